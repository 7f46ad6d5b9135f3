"""Mail authentication of inbound mail at the decision point: SPF, DKIM and DMARC (RFC 7208,
6376, 7489) for mail from other servers, before it is delivered.

Invariants:
- DNS lookups and crypto never run on the reactor thread (the authenticator runs in pool threads).
- A failing check never loses mail: temperror verdicts are recorded in the
  `Authentication-Results:` field and the message is delivered; an unexpected exception is
  logged and the message is delivered without the field.
- Only a DMARC `reject` disposition refuses mail (PolicyRejected, RFC 7489 §6.6.2: nothing is
  stored); `quarantine` sets `Envelope.quarantine`, which `decide` turns into the Junk mailbox.
- A received `Authentication-Results:` field bearing our authserv-id is a forgery (RFC 8601
  §5): it is renamed `X-Forged-Authentication-Results:` after the checks ran on the message
  as received, so a reader never mistakes it for our verdict.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from twisted.logger import Logger

from mailsrv.message.parse import header_end
from mailsrv.message.source import MessageSource
from mailsrv.ops.delivery import Envelope
from mailsrv.ops.errors import PolicyRejected

if TYPE_CHECKING:
    from mailsrv.server import Server

log = Logger()


async def authenticate_inbound(
    server: Server, envelope: Envelope, data: bytes | MessageSource
) -> tuple[bytes | MessageSource, bytes]:
    """Evaluates SPF, DKIM and DMARC for a message from another server; returns the message to
    store (forged results renamed) and the `Authentication-Results:` field to prepend (b"" when
    no authenticator is configured or the message was submitted by an account). Fills
    `envelope.verified_domains` and `envelope.quarantine`; raises PolicyRejected when the From:
    domain's DMARC policy says reject. A `MessageSource` stays one: only its header block is
    read into memory (issue 17 item 7)."""
    auth = server.mail_auth
    if auth is None or envelope.submission:
        return data, b""
    mail_from = str(envelope.mail_from) if envelope.mail_from is not None else ""
    try:
        results = await auth.evaluate(data, mail_from, envelope.trace.helo, envelope.trace.remote_ip)
    except Exception:
        # `evaluate` turns DNS failures into temperror verdicts; anything else is a bug,
        # and a bug in a check must not lose the message.
        log.failure("mail authentication failed for a message from {sender}", sender=mail_from)
        return _obscure(data, auth.hostname), b""
    envelope.verified_domains = frozenset(results.verified_domains)
    # For the incoming webhook's meta (mailsrv/ops/incoming.py).
    envelope.spf_pass = results.spf_identity == "mailfrom" and results.spf.result == "pass"
    envelope.dmarc_pass = results.dmarc.result == "pass"
    envelope.dkim_domains = tuple(dict.fromkeys(v.domain for v in results.dkim if v.result == "pass" and v.domain))
    if results.disposition == "reject":
        raise PolicyRejected(f"rejected by the DMARC policy of {results.dmarc.from_domain}")
    envelope.quarantine = results.disposition == "quarantine"
    return _obscure(data, auth.hostname), results.header_field()


def _obscure(data: bytes | MessageSource, authserv_id: str) -> bytes | MessageSource:
    if isinstance(data, bytes):
        return obscure_forged_results(data, authserv_id)
    header = data.header_block()
    renamed = obscure_forged_results(header, authserv_id)
    return data if renamed == header else data.tail(len(header)).with_head(renamed)


_RESULTS_FIELD = re.compile(rb"(?im)^authentication-results:[ \t]*(?:\r?\n[ \t]+)?([^;\s]*)")


def obscure_forged_results(data: bytes, authserv_id: str) -> bytes:
    """Renames header fields `Authentication-Results: <authserv_id>; ...` (RFC 8601 §5: a
    field with our authserv-id that we did not add is forged). The field body stays."""
    end = header_end(data, 0, len(data))
    if b"authentication-results:" not in data[:end].lower():
        return data  # the common case: no such field at all, nothing to copy
    ours = authserv_id.lower().encode()
    out = bytearray(data)
    for m in reversed(list(_RESULTS_FIELD.finditer(data, 0, end))):
        if m.group(1).lower() == ours:
            out[m.start() : m.start()] = b"X-Forged-"
    return bytes(out)
