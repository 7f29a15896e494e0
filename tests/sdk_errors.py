"""What a failed call raised, whichever shape the SDK release gives it.

An SDK may let the transport's error through or raise its own around it (anthropic <= 2.16
lets httpx2's error through mid-stream, >= 2.17 raises `APIConnectionError` /
`APITimeoutError` from it, as openai 3.x does). Tests check the cause, not the wrapper.
"""

from __future__ import annotations


def transport_error(raised: BaseException, kind: type[BaseException]) -> BaseException:
    """The `kind` error behind `raised`: `raised` itself, or the error it was raised from.
    Fails the test when no error in the chain of causes is a `kind`."""
    error: BaseException | None = raised
    visited: set[int] = set()
    while error is not None and id(error) not in visited:
        if isinstance(error, kind):
            return error
        visited.add(id(error))
        # the cause Python prints: `raise … from cause`, else the error being handled
        error = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
    raise AssertionError(f"{raised!r} is not a {kind.__name__}, nor raised from one")
