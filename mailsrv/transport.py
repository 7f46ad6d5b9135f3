"""Socket options that every protocol session sets on its connection."""

from __future__ import annotations

from typing import Any


def set_no_delay(transport: Any) -> None:
    """TCP_NODELAY on the socket under `transport` (plain, STARTTLS-capable or wrapped in
    implicit TLS). Without it a small reply, such as IMAP's "+" continuation before a
    synchronising literal or an SMTP reply the client waits for, is held back by Nagle's
    algorithm until the client's delayed ACK: about 40 ms per round trip."""
    for candidate in (transport, getattr(transport, "transport", None)):
        setter = getattr(candidate, "setTcpNoDelay", None)
        if setter is not None:
            try:
                setter(True)
            except OSError:
                pass
            return
