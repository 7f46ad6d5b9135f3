"""Replies onto the wire with as few system calls and reactor rounds as possible.

Twisted's TCP transport never sends in `write()`: it buffers, registers the socket for
writability (an epoll_ctl), sends when the next poll reports it writable and unregisters
it (another epoll_ctl). An SMTP session writes one short reply per command and the client
waits for each, so that is two system calls and a reactor round per reply on top of the
send. `send_now` sends at once when the socket is plain TCP with nothing buffered, which is
the case for every reply of a session not yet in TLS; anything else (TLS, a full socket
buffer, data still queued, a test transport) goes through `transport.write` as before.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import tcp


def send_now(transport: Any, data: bytes) -> None:
    """Writes `data` to the transport: at once when that is safe (module docstring)."""
    if (
        type(transport) is tcp.Server
        and not transport.TLS
        and transport.connected
        and not transport.disconnecting
        and not transport._tempDataLen
        and transport.offset == len(transport.dataBuffer)
    ):
        try:
            sent = transport.socket.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            sent = 0  # the transport meets the error again when it sends, and closes
        data = data[sent:]
        if not data:
            return
    transport.write(data)
