"""Damaging a successful answer as it flows: the one implementation of the stream faults.

`Damage` is incremental. Feed it the body bytes as they arrive (from the upstream in the
proxy, from a synthesized answer in the test process) and it says what to send on, after
what extra delay, and how the response ends: cleanly, with a dropped connection, or with
a stall that runs into the client's read timeout. Stream bodies are handled event by
event; a non-stream body is collected whole and damaged as one piece.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Literal

from .dialects import Dialect, EventKind, RequestInfo

End = Literal["close", "reset", "timeout"]

# Where a positional fault strikes: before the (after+1)-th output event, or before the
# stream's finish when it has fewer output events than that.
POSITIONAL = frozenset(
    {
        "stream_cut",
        "stream_truncated",
        "stream_error_event",
        "malformed_chunk",
        "stall_mid_stream",
        "content_filter",
    }
)


@dataclass
class Step:
    """What to send: (extra delay before it, bytes) pieces, and how the body ends if it does."""

    out: list[tuple[float, bytes]] = field(default_factory=list)
    end: End | None = None


class Damage:
    """One fault applied to one successful response body."""

    def __init__(
        self,
        fault: str,
        params: dict[str, Any],
        dialect: Dialect,
        info: RequestInfo,
        rng: random.Random,
    ) -> None:
        self.fault = fault
        self.params = params
        self.dialect = dialect
        self.info = info
        self.rng = rng
        self._buffer = b""
        self._content_seen = 0
        self._struck = False
        self._dropping = False
        self._ended = False
        self._first = True

    # -- the incremental interface ------------------------------------------------------
    def feed(self, data: bytes) -> Step:
        step = Step()
        if self._ended:
            return step
        self._buffer += data
        if not self.info.stream:
            return step  # a JSON body is damaged as a whole, at the end
        events, self._buffer = self.dialect.split(self._buffer, self.info)
        for raw in events:
            if self._ended:
                break
            self._event(raw, step)
        return step

    def close(self) -> Step:
        """The upstream body ended."""
        step = Step()
        if self._ended:
            return step
        rest, self._buffer = self._buffer, b""
        if not self.info.stream:
            self._body(rest, step)
        else:
            if rest.strip():
                self._event(rest, step)
            if not self._ended and self.fault in POSITIONAL and not self._struck:
                self._strike(None, step)  # the stream ended before the fault's position
        if step.end is None and not self._ended:
            step.end = "close"
        self._ended = True
        return step

    @property
    def ended(self) -> bool:
        return self._ended

    # -- streams ------------------------------------------------------------------------
    def _event(self, raw: bytes, step: Step) -> None:
        kind = self.dialect.classify(raw, self.info)
        fault = self.fault
        if fault in POSITIONAL and not self._struck and self._at_position(kind):
            raw_or_none = self._strike(raw, step)
            if raw_or_none is None:
                return
            raw = raw_or_none
        if self._dropping and kind == "content":
            return
        if kind == "content":
            self._content_seen += 1
        if fault == "truncate_length":
            after = self.params.get("after")
            if after is not None and kind == "content" and self._content_seen > after:
                return
            if kind in ("finish", "end"):
                raw = self.dialect.rewrite_finish(raw, "length", self.info)
        elif fault == "content_filter" and self._dropping and kind in ("finish", "end"):
            raw = self.dialect.rewrite_finish(raw, "content_filter", self.info)
        elif fault == "token_spike" and kind in ("pre", "finish", "usage", "end"):
            raw = self.dialect.rewrite_usage(raw, float(self.params.get("factor", 10)), self.info)
        step.out.append((self._delay(), raw))

    def _at_position(self, kind: EventKind) -> bool:
        after = int(self.params.get("after", 2))
        if kind == "content":
            return self._content_seen >= after
        return kind in ("finish", "end", "usage")

    def _strike(self, raw: bytes | None, step: Step) -> bytes | None:
        """Apply a positional fault before `raw`; returns what to send of `raw`, if anything."""
        self._struck = True
        fault = self.fault
        if fault == "malformed_chunk":
            return self.dialect.corrupt(raw, self.info) if raw is not None else None
        if fault == "content_filter":
            self._dropping = True
            return raw
        if fault == "stream_error_event":
            step.out.append((self._delay(), self.dialect.error_event(self.params, self.info)))
            step.end = "close"
        else:
            ends: dict[str, End] = {"stream_cut": "reset", "stall_mid_stream": "timeout"}
            step.end = ends.get(fault, "close")
        self._ended = True
        return None

    def _delay(self) -> float:
        if self.fault != "slow_stream":
            return 0.0
        delay = float(self.params.get("delay_s", 0.05))
        jitter = float(self.params.get("jitter_s", 0.0))
        if jitter:
            delay += self.rng.uniform(-jitter, jitter)
        if self._first:
            self._first = False
            delay += float(self.params.get("ttft_s", 0.0))
        return max(0.0, delay)

    # -- one JSON body ------------------------------------------------------------------
    def _body(self, body: bytes, step: Step) -> None:
        fault, dialect, info = self.fault, self.dialect, self.info
        half = body[: max(1, len(body) // 2)]
        if fault == "stream_cut":
            step.out.append((0.0, half))
            step.end = "reset"
        elif fault == "stall_mid_stream":
            step.out.append((0.0, half))
            step.end = "timeout"
        elif fault in ("stream_truncated", "malformed_chunk"):
            step.out.append(
                (0.0, half if fault == "stream_truncated" else dialect.corrupt(body, info))
            )
        elif fault == "truncate_length":
            step.out.append(
                (0.0, dialect.rewrite_finish(dialect.cut_content(body, info), "length", info))
            )
        elif fault == "content_filter":
            blank = dialect.blank_content(body, info)
            step.out.append((0.0, dialect.rewrite_finish(blank, "content_filter", info)))
        elif fault == "token_spike":
            step.out.append(
                (0.0, dialect.rewrite_usage(body, float(self.params.get("factor", 10)), info))
            )
        else:  # slow_stream: the whole body, late
            step.out.append((self._delay(), body))
        self._ended = True


def plan(damage: Damage, pieces: list[bytes]) -> tuple[list[tuple[float, bytes]], End]:
    """Run `damage` over a whole answer at once: (pieces with cumulative offsets, ending)."""
    out: list[tuple[float, bytes]] = []
    clock = 0.0
    ending: End | None = None
    for piece in pieces:
        step = damage.feed(piece)
        for delay, data in step.out:
            clock += delay
            out.append((clock, data))
        if step.end is not None:
            ending = step.end
            break
    if ending is None:
        step = damage.close()
        for delay, data in step.out:
            clock += delay
            out.append((clock, data))
        ending = step.end or "close"
    return out, ending
