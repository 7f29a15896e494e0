"""`llmobs-junit.xml`, written with junit-xml: one test case per test, its LLM figures as
properties, a failure element per violated budget, truncation or resilience finding, and
the run's totals as suite properties. The same figures go into pytest's own `--junitxml`
through `user_properties` (flat scalars)."""

from __future__ import annotations

import re
import socket
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..summary import figures, findings, totals

if TYPE_CHECKING:
    from junit_xml import TestCase

PREFIX = "llmobs."
_ILLEGAL_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def properties(test: Mapping[str, Any]) -> list[tuple[str, str | int | float]]:
    """The per-test properties, `llmobs.`-prefixed, unknown values left out."""
    return [(PREFIX + k, v) for k, v in figures(test).items() if v is not None]


def has_llm_data(test: Mapping[str, Any]) -> bool:
    return bool(test.get("calls") or test.get("chaos") or test.get("cassette"))


def build(
    tests: Mapping[str, Mapping[str, Any]],
    *,
    run_id: str,
    session_result: str | None = None,
    suite_name: str = "llmobs",
    outside: Sequence[Mapping[str, Any]] = (),
    alerts: Sequence[Mapping[str, Any]] = (),
) -> str:
    """The JUnit XML document (UTF-8 text); calls made outside any test (`outside`) count
    in the suite's totals only."""
    from junit_xml import TestCase, TestSuite  # here: workers never write the file (~10 ms)

    cases: list[tuple[TestCase, list[tuple[str, Any]]]] = []
    for nodeid, test in tests.items():
        classname, name = split_nodeid(nodeid)
        location = test.get("location") or [None, None]
        case = TestCase(
            name,
            classname=classname,
            elapsed_sec=test.get("duration_s") or None,
            file=location[0],
            line=str(location[1] + 1) if location[1] is not None else None,
            allow_multiple_subelements=True,
        )
        outcome = test.get("outcome")
        # One truth: a <failure> only where pytest failed the test; a passed test's findings
        # (llm_budget_mode / llm_chaos_gate = warn) stay in its properties as counts.
        for f in findings(test) if outcome == "failed" else ():
            case.add_failure_info(
                message=_clean(f["message"]),
                output=_clean(f.get("detail") or f["message"]),
                failure_type=f"llmobs.{f['kind']}.{f['key']}",
            )
        if outcome == "failed" and not case.failures:
            case.add_failure_info(
                message="the test failed (see pytest's report)", failure_type="pytest.failed"
            )
        elif outcome == "skipped":
            case.add_skipped_info(message="skipped")
        cases.append((case, properties(test) if has_llm_data(test) else []))
    if session_result:
        case = TestCase("llm_session_budget", classname="llmobs.session")
        case.add_failure_info(
            message=_clean(session_result.splitlines()[0]),
            output=_clean(session_result),
            failure_type="llmobs.session_budget",
        )
        cases.append((case, []))
    cases += [_alert_case(alert) for alert in alerts]
    total = totals(tests.values(), outside)
    suite_props = {PREFIX + "run_id": run_id}
    if alerts:
        suite_props[PREFIX + "alerts_firing"] = str(len(alerts))
    suite_props.update({PREFIX + k: str(v) for k, v in total.items() if v is not None})
    suite = TestSuite(
        suite_name,
        [c for c, _ in cases],
        hostname=socket.gethostname(),
        timestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        properties=suite_props,
    )
    suite_el = suite.build_xml_doc(encoding="utf-8")
    for element, (_, props) in zip(suite_el.findall("testcase"), cases, strict=True):
        if props:
            holder = ET.Element("properties")
            for key, value in props:
                ET.SubElement(holder, "property", {"name": key, "value": _clean(str(value))})
            element.insert(0, holder)
    root = ET.Element(
        "testsuites",
        {
            "name": suite_name,
            "tests": suite_el.get("tests", "0"),
            "failures": suite_el.get("failures", "0"),
            "errors": suite_el.get("errors", "0"),
            "skipped": suite_el.get("skipped", "0"),
            "time": suite_el.get("time", "0"),
        },
    )
    root.append(suite_el)
    ET.indent(root, space="  ")  # readable, without minidom's parse-and-print round trip
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode")


def _alert_case(alert: Mapping[str, Any]) -> tuple[TestCase, list[tuple[str, Any]]]:
    """A firing alert rule (report/watch.py): a failure when critical, else a passed case
    whose properties and output say what fired."""
    from junit_xml import TestCase

    where = "" if alert.get("scope") == "session" else f" [{alert.get('key')}]"
    text = (
        f"{str(alert.get('severity')).upper()} {alert.get('name')}: {alert.get('metric')} = "
        f"{alert.get('value')} ({alert.get('metric')} {alert.get('op')} {alert.get('threshold')})"
    )
    case = TestCase(_clean(f"{alert.get('name')}{where}"), classname="llmobs.alerts")
    if alert.get("severity") == "critical":
        case.add_failure_info(message=_clean(text), failure_type="llmobs.alert.critical")
    else:
        case.stdout = _clean(text)
    keys = ("metric", "op", "threshold", "value", "scope", "key", "severity")
    return case, [(PREFIX + "alert." + k, alert.get(k)) for k in keys]


def split_nodeid(nodeid: str) -> tuple[str, str]:
    """pytest's naming: `t/test_x.py::Cls::test_y` → (`t.test_x.Cls`, `test_y`)."""
    parts = nodeid.split("::")
    module = parts[0].removesuffix(".py").replace("/", ".").replace("\\", ".")
    return ".".join([module, *parts[1:-1]]), parts[-1] if len(parts) > 1 else parts[0]


def _clean(text: str) -> str:
    return _ILLEGAL_XML.sub("", text)
