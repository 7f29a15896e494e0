"""What a failed call raised, whichever shape the SDK release gives it.

An SDK may let the transport's error through or raise its own around it (anthropic <= 2.16
lets httpx2's error through mid-stream, >= 2.17 raises `APIConnectionError` /
`APITimeoutError` from it, as openai 3.x does). Tests check the cause, not the wrapper.
"""

from __future__ import annotations

import httpx
import httpx2

# The transport's errors: httpx2's under SDKs on httpx2 (openai 3, anthropic 1, google-genai 3
# and later), httpx's before.
READ_TIMEOUT = (httpx.ReadTimeout, httpx2.ReadTimeout)
PROTOCOL_ERROR = (httpx.RemoteProtocolError, httpx2.RemoteProtocolError)


def transport_error(
    raised: BaseException, kind: type[BaseException] | tuple[type[BaseException], ...]
) -> BaseException:
    """The `kind` error behind `raised` (a class, or a tuple of them such as httpx's and
    httpx2's): `raised` itself, or the error it was raised from. Fails the test when no error
    in the chain of causes is a `kind`."""
    error: BaseException | None = raised
    visited: set[int] = set()
    while error is not None and id(error) not in visited:
        if isinstance(error, kind):
            return error
        visited.add(id(error))
        # the cause Python prints: `raise … from cause`, else the error being handled
        error = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
    names = " / ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
    raise AssertionError(f"{raised!r} is not a {names}, nor raised from one")
