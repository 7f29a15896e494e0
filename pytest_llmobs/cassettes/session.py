"""Cassettes at run time: a responder (replay) and a listener (record) on the interceptor.

pytest runs one test at a time per process, so "the cassette in use" is the top of a stack:
the running test's, with a higher-scoped fixture's pushed on top while that fixture is
set up or torn down. Calls from threads and tasks a test starts go to the test's cassette.

For each request the transports see (chaos answers first, and is never recorded):

1. no cassette in use, record mode `off`, another recorder or mock answering (vcrpy,
   respx, responses …: intercept/foreign.py), or a host the cassette ignores (vcrpy's
   ignore_hosts / ignore_localhost under pytest-recording's `vcr` marker): straight on,
   not recorded;
2. a non-LLM request to an allowed host (`llm_allow_hosts`, default loopback): the
   network, not recorded; LLM requests (per provider detection) are always cassette
   business, even to a local server;
3. a recorded answer that matches: served, chunk by chunk, on the recorded schedule times the pace;
4. else, if the record mode allows: the network, and the finished exchange is recorded;
5. else: blocked. The client gets a 404 whose body says why (with `x-should-retry: false`
   so SDKs do not retry), and the test fails from the plugin with the full explanation,
   whether or not the app caught the error.

A request that 1, 2 or 4 would send to the network carrying one of the run's placeholder
credentials (credentials.py) is blocked the same way: a placeholder never leaves the process.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..intercept.exchange import CannedResponse, Exchange
from ..intercept.foreign import ANSWERED_BY
from ..redaction import Redactor
from .credentials import ReplayCredentials
from .explain import Miss, explain
from .format import CassetteError
from .interactions import (
    redacted_headers,
    request_from_exchange,
    response_from_exchange,
    to_canned,
)
from .matching import MatchRules, is_loopback

if TYPE_CHECKING:
    from ..providers import ProviderRegistry
    from .cassette import LLMCassette, StoredRequest

# vcrpy (imported with .cassette) costs ~0.4 s to import: only runs that open a cassette pay.

_RECORD = "cassette.record"
MISS_STATUS = 404


@dataclass
class Context:
    """A cassette in use: a test's or a higher-scoped fixture's."""

    owner: str  # node id of the test, or "fixture <name>"
    path: Path
    mode: str
    pace: float
    rules: MatchRules
    extra_paths: tuple[Path, ...] = ()
    allow_hosts: tuple[str, ...] = ()
    bypass_hosts: frozenset[str] = frozenset()  # every request to these: network, unrecorded
    cassette: LLMCassette | None = None
    extras: list[LLMCassette] = field(default_factory=list)
    error: CassetteError | None = None
    opened: bool = False
    closed: bool = False
    failed: bool = False

    @property
    def used(self) -> bool:
        return self.opened


class CassetteSession:
    """Session-wide cassette state: the stack of contexts, misses per test, what was saved."""

    def __init__(
        self,
        registry: ProviderRegistry,
        redactor: Redactor,
        credentials: ReplayCredentials | None = None,
    ) -> None:
        self.registry = registry
        self.redactor = redactor
        self.credentials = credentials
        self._lock = threading.RLock()
        self._stack: list[Context] = []
        self.current_nodeid: str | None = None
        self._misses: dict[str | None, dict[Any, Miss]] = {}
        self.saved: list[Path] = []
        self.unsaved: list[tuple[Path, str]] = []
        self.late: int = 0

    # -- the stack -------------------------------------------------------------------------
    def push(self, context: Context) -> None:
        with self._lock:
            self._stack.append(context)

    def remove(self, context: Context) -> None:
        with self._lock:
            for i in range(len(self._stack) - 1, -1, -1):
                if self._stack[i] is context:
                    del self._stack[i]
                    return

    def current(self) -> Context | None:
        with self._lock:
            return self._stack[-1] if self._stack else None

    def close(self, context: Context, outcome: str) -> None:
        """The context is done: save its cassette if the mode and the outcome allow.

        `outcome` is "passed", "failed" or "interrupted". Modes that only add (once,
        new_episodes) save after a failure too; modes that replace (all, rewrite) save
        only after a pass; nothing is saved after an interruption.
        """
        self.remove(context)
        with self._lock:
            if context.closed:
                return
            context.closed = True
            try:
                self._save(context, outcome)
            finally:
                # A test item keeps its context all session: let the cassette's data go.
                context.cassette, context.extras = None, []

    def _save(self, context: Context, outcome: str) -> None:
        cassette = context.cassette
        if cassette is None or context.error is not None or not cassette.dirty:
            return
        if outcome == "interrupted":
            self.unsaved.append((context.path, "the run was interrupted"))
            return
        if context.mode in ("all", "rewrite") and outcome != "passed":
            self.unsaved.append(
                (context.path, f"{context.owner} failed (record mode {context.mode})")
            )
            return
        try:
            saved = cassette.save()
        except (CassetteError, OSError) as exc:  # the old file is untouched
            self.unsaved.append((context.path, f"could not be written: {exc}"))
            return
        if saved:
            self.saved.append(context.path)

    # -- opening cassettes -------------------------------------------------------------------
    def open(self, context: Context) -> LLMCassette | None:
        """Open the context's cassettes now (a fixture that hands the cassette out); None
        when the file cannot be read (`context.error` says why)."""
        with self._lock:
            return self._open(context)

    def prepare(self, context: Context) -> None:
        """Open the context's cassettes ahead of its first request, when that request will
        need them: there is a file to replay, or the mode records (the live request must be
        timed without vcrpy's import in it). In mode none with no file every LLM request is
        blocked anyway, and a run that replays nothing never imports vcrpy."""
        if context.mode == "off" or context.opened:
            return
        paths = (context.path, *context.extra_paths)
        if context.mode == "none" and not any(path.exists() for path in paths):
            return
        self.open(context)

    def _open(self, context: Context) -> LLMCassette | None:
        if not context.opened:
            context.opened = True
            from .cassette import LLMCassette

            try:
                context.cassette = LLMCassette.open(
                    context.path, context.mode, context.rules, self.redactor
                )
                context.extras = [
                    LLMCassette.open(path, "none", context.rules, self.redactor)
                    for path in context.extra_paths
                ]
            except CassetteError as exc:
                context.error = exc
        return context.cassette if context.error is None else None

    # -- the responder -----------------------------------------------------------------------
    def __call__(self, exchange: Exchange) -> CannedResponse | None:
        context = self.current()
        if context is None or ANSWERED_BY in exchange.annotations:
            # No cassette in use, or another recorder or mock answers (intercept/foreign.py).
            return None
        if (
            context.mode == "off"
            or self._allowed(exchange, context.allow_hosts)
            or exchange.host.lower() in context.bypass_hosts
        ):
            return self._leave(exchange, context)
        with self._lock:
            cassette = self._open(context)
            if cassette is None:
                assert context.error is not None
                return self._block(
                    Miss(
                        self.current_nodeid,
                        context.path,
                        context.mode,
                        "corrupt",
                        error=str(context.error),
                    ),
                    ("corrupt",),
                )
            from .cassette import StoredRequest

            # vcrpy's filters and matchers may read headers; our matching never does
            headers = context.rules.wants_headers and (
                context.rules.filters is not None
                or any(c.foreign for c in (cassette, *context.extras))
            )
            request = StoredRequest(request_from_exchange(exchange, self.redactor, headers=headers))
            request.started_at = exchange.started_at
            try:
                key = cassette.normalize(request).key
                for source in (cassette, *context.extras):
                    if source.can_play_response_for(request):
                        response = source.play_response(request)
                        annotations = {"cassette": str(source.path), "replay.pace": context.pace}
                        return to_canned(response.stored, context.pace, annotations)
            except CassetteError as exc:  # a broken interaction, found when first read
                context.error = exc
                miss = Miss(self.current_nodeid, exc.path, context.mode, "corrupt", error=str(exc))
                return self._block(miss, ("corrupt",))
            if cassette.write_protected:
                if not cassette.exists:
                    reason = "missing"
                elif cassette.times_recorded(request):
                    reason = "played"
                else:
                    reason = "no_match"
                miss = Miss(
                    self.current_nodeid,
                    context.path,
                    context.mode,
                    reason,
                    request=request,
                    cassette=cassette,
                )
                return self._block(miss, key)
            blocked = self._leave(exchange, context, request)
            if blocked is not None:
                return blocked
            request.stored["headers"] = redacted_headers(exchange, self.redactor)
            exchange.annotations[_RECORD] = (context, request)
            return None

    def _leave(
        self, exchange: Exchange, context: Context, request: StoredRequest | None = None
    ) -> CannedResponse | None:
        """None lets the request go to the network; a placeholder credential stops it."""
        name = self.credentials.carried_by(exchange) if self.credentials else None
        if name is None:
            return None
        if request is None:
            from .cassette import StoredRequest

            request = StoredRequest(request_from_exchange(exchange, self.redactor, headers=False))
        miss = Miss(
            self.current_nodeid,
            context.path,
            context.mode,
            "placeholder",
            request=request,
            credential=name,
        )
        return self._block(miss, ("placeholder", name, exchange.method, request.stored["uri"]))

    def _allowed(self, exchange: Exchange, patterns: tuple[str, ...]) -> bool:
        if not patterns or not any(_host_matches(p, exchange) for p in patterns):
            return False
        try:
            return not self.registry.recognizes(exchange)
        except Exception:
            return False

    def _block(self, miss: Miss, key: Any) -> CannedResponse:
        with self._lock:
            misses = self._misses.setdefault(miss.nodeid, {})
            dedupe = (str(miss.path), key)
            if dedupe in misses:
                misses[dedupe].count += 1
            else:
                misses[dedupe] = miss
        body = json.dumps(
            {
                "type": "error",
                "error": {
                    "type": "llmobs_cassette_miss",
                    "code": "llmobs_cassette_miss",
                    "message": f"{miss.headline()}: {miss.path}",
                },
            }
        ).encode()
        return CannedResponse(
            status=MISS_STATUS,
            headers=[
                ("content-type", "application/json"),
                ("content-length", str(len(body))),
                ("x-should-retry", "false"),
            ],
            chunks=[(0.0, body)],
            reason="Not Found",
            source="replay",
            annotations={"cassette.miss": miss.reason},
        )

    def take_misses(self, nodeid: str | None) -> str | None:
        """The explanation of this test's misses since the last call, or None."""
        with self._lock:
            misses = self._misses.pop(nodeid, None)
        if not misses:
            return None
        return explain(list(misses.values()))

    # -- the listener --------------------------------------------------------------------------
    def on_exchange(self, exchange: Exchange) -> None:
        target = exchange.annotations.pop(_RECORD, None)
        if target is None or exchange.source != "live":
            return
        context, request = target
        response = response_from_exchange(exchange, self.redactor)
        if response is None:  # no status line (connection refused …): nothing to replay
            return
        with self._lock:
            if context.closed or context.cassette is None:
                self.late += 1
                return
            from .cassette import StoredResponse

            context.cassette.record(request, StoredResponse(response))


def loopback_only(patterns: tuple[str, ...]) -> bool:
    """Whether every `llm_allow_hosts` pattern names this machine: then, in record mode
    none, no request leaves it (LLM calls replay, other traffic is local or blocked)."""
    return all(is_loopback(_split_pattern(p)[0]) for p in patterns)


def _split_pattern(pattern: str) -> tuple[str, str | None]:
    """`HOST`, `HOST:PORT`, `[::1]:8080`, `*.domain`, `*` → (host, port or None)."""
    pattern = pattern.strip().lower()
    host, port = pattern, None
    if pattern.startswith("[") and "]" in pattern:  # [::1]:8080
        host, _, rest = pattern[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else None
    elif pattern.count(":") == 1:
        host, port = pattern.split(":")
    return host, port


def _host_matches(pattern: str, exchange: Exchange) -> bool:
    host, port = _split_pattern(pattern)
    if host == "*" and port is None:
        return True
    if port not in (None, "", "*") and str(exchange.port) != port:
        return False
    actual = exchange.host.lower()
    if host.startswith("*."):
        return actual.endswith(host[1:])
    return actual == host
