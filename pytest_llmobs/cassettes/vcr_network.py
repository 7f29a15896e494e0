"""pytest-recording's `--block-network` / `block_network` marker: socket connections fail
during the test, except to the allowed hosts.

As in pytest-recording: `socket.socket.connect` and `connect_ex` are replaced for the test
and restored after it (sockets themselves still work, so a local server in the same process
keeps listening); a host is allowed when one of the `allowed_hosts` regexes matches the
start of the address being connected to (an IP address, once the client resolved the name),
or, with `allow_private_ips`, when that address is a private one. The error is
pytest-recording's, word for word, so tests that expect it keep passing. Replayed calls
never open a socket, so a replay passes under the block.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any


@contextmanager
def blocked(allowed_hosts: Sequence[str] | None, allow_private_ips: bool) -> Iterator[None]:
    """Connections to hosts not allowed raise RuntimeError until the block ends."""
    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex
    pattern = re.compile("(" + ")|(".join(allowed_hosts) + ")") if allowed_hosts else None

    def allowed(host: str) -> bool:
        if pattern is not None and pattern.match(host):
            return True
        return allow_private_ips and _private(host)

    def guard(original: Callable[..., Any]) -> Callable[..., Any]:
        def network_guard(sock: socket.socket, address: Any, *args: Any, **kwargs: Any) -> Any:
            host: Any = ""
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                host = address[0]
            elif sock.family == getattr(socket, "AF_UNIX", None):
                host = address
            text = host.decode() if isinstance(host, bytes | bytearray) else str(host)
            if allowed(text):
                return original(sock, address, *args, **kwargs)
            raise disabled_error(host, allowed_hosts, allow_private_ips)

        return network_guard

    socket.socket.connect = guard(connect)  # type: ignore[method-assign]
    socket.socket.connect_ex = guard(connect_ex)  # type: ignore[method-assign]
    try:
        yield
    finally:
        socket.socket.connect = connect  # type: ignore[method-assign]
        socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]


def disabled_error(
    host: Any, allowed_hosts: Sequence[str] | None, allow_private_ips: bool
) -> RuntimeError:
    message = f"Network is disabled for host {host!r}"
    allowed = [repr(h) for h in allowed_hosts or ()]
    if allow_private_ips:
        allowed.append("private IPs")
    if allowed:
        message += f" (allowed hosts: {', '.join(allowed)})"
    return RuntimeError(message)


def _private(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_private
    except ValueError:  # a name or a unix socket path
        return False
