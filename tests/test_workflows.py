"""The project's CI and release workflows and the ready-to-copy one for users: structure,
and every command they run exists (make targets, `--llm-*` flags and their values, `llmobs`
subcommands and options, parsed by the real parser)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import tomllib
from typing import Any

import pytest
import yaml
from docs_support import (
    ROOT,
    check_workflow,
    shell_commands,
    workflow_commands,
    workflow_steps,
    workflow_triggers,
)

from pytest_llmobs.chaos.scenario import load_scenario

CI = ROOT / ".github" / "workflows" / "ci.yml"
RELEASE = ROOT / ".github" / "workflows" / "release.yml"
USER = ROOT / "example_suites" / "github-workflow.yml"
PR_DIFF = ROOT / "example_suites" / "pr-diff-workflow.yml"


def _load(path: Any) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _runs(job: dict[str, Any]) -> list[list[str]]:
    return [w for step in job["steps"] for w in shell_commands(str(step.get("run", "")))]


def _ci_run_packages() -> set[str]:
    """The apt packages .ci/run installs."""
    text = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    found = re.search(r"install -y ([^>\n]+)", text)
    assert found, ".ci/run no longer installs apt packages with `install -y …`"
    return set(found[1].split())


@pytest.mark.parametrize(
    "path",
    [CI, RELEASE, USER, PR_DIFF],
    ids=["ci.yml", "release.yml", "github-workflow.yml", "pr-diff-workflow.yml"],
)
def test_workflow_structure_and_commands(path: Any) -> None:
    problems = check_workflow(_load(path), path.name)
    assert not problems, "\n".join(problems)


def test_project_ci_runs_lint_types_docs_tests_xdist_wheel_and_demo() -> None:
    data = _load(CI)
    jobs = data["jobs"]
    pythons = jobs["test"]["strategy"]["matrix"]["python"]
    assert pythons == ["3.11", "3.12", "3.13"]
    assert any(
        step.get("with", {}).get("python-version") == "${{ matrix.python }}"
        for step in jobs["test"]["steps"]
    )
    commands = [" ".join(words) for words in workflow_commands(data)]
    wanted_commands = ("make lint", "make typecheck", "make docs", "make unit", "make wheel")
    for wanted in (*wanted_commands, "make demo"):
        assert wanted in commands, f"ci.yml runs no `{wanted}`"
    xdist = [c for c in commands if "pytest" in c and re.search(r"(^| )-n 2( |$)", c)]
    assert xdist and " tests" in xdist[0] + " ", "ci.yml has no run of the tests under -n 2"
    assert {"push", "pull_request"} <= set(workflow_triggers(data))


def test_project_ci_tests_floor_locked_and_latest_on_every_python() -> None:
    """The test job is a Python x dependency-set matrix; each set runs its make target, and
    each target the workflow names builds that set (the floor by lowest-direct resolution,
    the locked set from uv.lock, the latest with none)."""
    job = _load(CI)["jobs"]["test"]
    matrix = job["strategy"]["matrix"]
    assert matrix["python"] == ["3.11", "3.12", "3.13"]
    assert matrix["deps"] == ["floor", "locked", "latest"]
    targets = {"floor": "make test-floor", "locked": "make unit", "latest": "make test-latest"}
    for deps, command in targets.items():
        steps = [s for s in job["steps"] if deps in str(s.get("if", ""))]
        assert [" ".join(w) for s in steps for w in shell_commands(s["run"])] == [command]
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    floor = makefile.split("\ntest-floor:")[1].split("\n\n")[0]
    assert "--resolution lowest-direct" in floor and "pytest" in floor
    latest = makefile.split("\ntest-latest:")[1].split("\n\n")[0]
    assert "lowest" not in latest and "pytest" in latest
    assert "sync --locked" in makefile.split("\n$(STAMP):")[1].split("\n\n")[0]


def test_project_ci_installs_the_system_tools_of_ci_run() -> None:
    """Every job that runs the tests installs what .ci/run installs (chromium for the HTML
    report, promtool, the Pushgateway)."""
    wanted = _ci_run_packages()
    assert {"chromium", "prometheus", "prometheus-pushgateway"} <= wanted
    jobs = _load(CI)["jobs"]
    testing = [
        name
        for name, job in jobs.items()
        if any(("make" in w and "unit" in w) or ("pytest" in " ".join(w)) for w in _runs(job))
    ]
    assert testing
    for name in testing:
        installs = [w for w in _runs(jobs[name]) if "apt-get" in w and "install" in w]
        assert installs, f"ci.yml job {name} runs tests without installing {sorted(wanted)}"
        assert wanted <= set(installs[0]), f"ci.yml job {name}: {installs[0]}"


def test_user_workflow_shards_uploads_merges_and_runs_chaos_on_schedule() -> None:
    data = _load(USER)
    jobs = data["jobs"]
    triggers = workflow_triggers(data)
    [cron] = [entry["cron"] for entry in triggers["schedule"]]
    assert len(cron.split()) == 5
    assert "pull_request" in triggers

    # the suite: pytest with artifacts, sharded, uploaded per shard
    test = jobs["test"]
    [pytest_run] = [w for w in _runs(test) if w[0] == "pytest"]
    artifacts = next(a.split("=", 1)[1] for a in pytest_run if a.startswith("--llm-artifacts="))
    assert "-n" in pytest_run and "matrix" in test["strategy"]
    uploads = [s for s in test["steps"] if s.get("uses", "").startswith("actions/upload-artifact")]
    assert uploads and uploads[0]["with"]["path"].rstrip("/") == artifacts
    assert uploads[0]["if"] == "always()"  # a failed run's artifacts are the useful ones
    uploaded = uploads[0]["with"]["name"].split("${{")[0]

    # the report job: downloads every shard, merges, checks the session budget
    report = next(job for job in jobs.values() if "test" in _as_list(job.get("needs")))
    downloads = [s for s in report["steps"] if "download-artifact" in s.get("uses", "")]
    assert downloads and downloads[0]["with"]["pattern"].startswith(uploaded)
    commands = [" ".join(w) for w in _runs(report)]
    assert any(c.startswith("llmobs merge ") for c in commands)
    assert any(c.startswith("llmobs check ") and "--session-budget" in c for c in commands)

    # scheduled chaos: the proxy with a scenario, the tests pointed at it
    chaos = next(
        job for job in jobs.values() if any(w[:2] == ["llmobs", "proxy"] for w in _runs(job))
    )
    assert "schedule" in chaos["if"]
    [proxy] = [w for w in _runs(chaos) if w[:2] == ["llmobs", "proxy"]]
    assert "--scenario" in proxy and "--upstream" in proxy
    listen = proxy[proxy.index("--listen") + 1]
    pointed = [s for s in chaos["steps"] if listen in str(s.get("env", {}).get("OPENAI_BASE_URL"))]
    assert pointed and any(w[0] == "pytest" for w in shell_commands(pointed[0]["run"]))


def test_user_workflow_names_the_example_scenario() -> None:
    """The scenario it tells users to start from exists and loads."""
    text = USER.read_text(encoding="utf-8")
    [named] = re.findall(r"example_suites/[\w/.-]+\.yaml", text)
    scenario = load_scenario(ROOT / named)
    assert scenario.rules


def test_steps_have_names_or_obvious_commands() -> None:
    """Long run steps carry a name, so the job log reads as a list of what happens."""
    for path in (CI, RELEASE, USER):
        for step in workflow_steps(_load(path)):
            run = str(step.get("run", ""))
            if run.count("\n") > 1:
                assert step.get("name"), (
                    f"{path.name}: unnamed multi-line step {shlex.quote(run[:40])}"
                )


def test_release_publishes_on_a_version_tag_after_the_tests_with_trusted_publishing() -> None:
    """A `v*` tag only; `make test` (whose `make wheel` builds, checks and tests dist/) before
    anything is published; the files tested are the files published; the OIDC token only in
    the publish job, which runs no code of the repository and holds no PyPI secret."""
    data = _load(RELEASE)
    assert workflow_triggers(data) == {"push": {"tags": ["v*"]}}
    assert data["permissions"] == {"contents": "read"}
    jobs = data["jobs"]
    [publish_name] = [
        name
        for name, job in jobs.items()
        if any("gh-action-pypi-publish" in s.get("uses", "") for s in job["steps"])
    ]
    publish = jobs[publish_name]
    [build_name] = _as_list(publish["needs"])
    build = jobs[build_name]

    commands = [" ".join(w) for w in _runs(build)]
    assert "make test" in commands
    upload = [s for s in build["steps"] if s.get("uses", "").startswith("actions/upload-artifact")]
    assert [s["with"]["path"].rstrip("/") for s in upload] == ["dist"]
    assert upload[0]["with"]["if-no-files-found"] == "error"
    steps = build["steps"]
    assert steps.index(upload[0]) > max(
        i for i, s in enumerate(steps) if "make test" in str(s.get("run"))
    ), "dist/ is uploaded before the tests ran"

    assert publish["permissions"] == {"id-token": "write"}
    assert publish["environment"]["name"] == "pypi"
    assert not any("checkout" in s.get("uses", "") or "run" in s for s in publish["steps"])
    download = [s for s in publish["steps"] if "download-artifact" in s.get("uses", "")]
    assert download and download[0]["with"] == {"name": upload[0]["with"]["name"], "path": "dist/"}
    [action] = [s for s in publish["steps"] if "gh-action-pypi-publish" in s.get("uses", "")]
    assert not {"password", "user"} & set(action.get("with") or {})  # trusted publishing
    assert "secrets." not in RELEASE.read_text(encoding="utf-8")
    for name, job in jobs.items():
        if name != publish_name:
            assert "id-token" not in (job.get("permissions") or {}), name


@pytest.mark.parametrize("tag_matches", [True, False])
def test_release_refuses_a_tag_that_is_not_the_version(tag_matches: bool) -> None:
    """The workflow's own check, run here: v<version in pyproject.toml> passes, another fails."""
    build = next(
        job
        for job in _load(RELEASE)["jobs"].values()
        if any("upload-artifact" in s.get("uses", "") for s in job["steps"])
    )
    [step] = [s for s in build["steps"] if "GITHUB_REF_NAME" in str(s.get("run"))]
    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "version"
    ]
    tag = f"v{version}" if tag_matches else f"v{version}.post99"
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", step["run"]],
        cwd=ROOT,
        env={**os.environ, "GITHUB_REF_NAME": tag},
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode == 0) is tag_matches, done.stdout + done.stderr
    if not tag_matches:
        assert f"::error::tag {tag} does not name the version" in done.stdout


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def test_pr_diff_workflow_diffs_the_default_branch_run_and_posts_a_sticky_comment() -> None:
    jobs = _load(PR_DIFF)["jobs"]
    steps = jobs["llm"]["steps"]
    runs = _runs(jobs["llm"])
    assert ["llmobs", "diff", "base-artifacts", "llmobs-artifacts"] in [r[:4] for r in runs]
    assert any(r[:3] == ["gh", "run", "download"] for r in runs)
    comment = next(s for s in steps if "sticky-pull-request-comment" in str(s.get("uses")))
    assert comment["with"]["path"] == "llm-diff.md"
    assert comment["if"] == "github.event_name == 'pull_request'"
