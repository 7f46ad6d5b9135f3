"""What a delivery into an account means for its webhooks (docs/webhooks.md), called by
`ops.delivery.deliver` for every stored copy, before the delivery is acknowledged:

- An incoming DSN, or any message to a fromid address (`localpart<sep><fromid>@domain`), is
  about the account's own outgoing mail: matched to the queued or retired message by fromid
  (else by the returned Message-ID), it becomes outgoing events with `DSN: true` (one per
  recipient the DSN reports, the kind from its Action), or "unrecognized" when nothing
  matches or the action is unknown. A failure whose status would have suppressed the address
  in our own attempt (queue/suppression.py) adds it to the suppression list here too.
  Only for accounts with an outgoing webhook.
- Otherwise, for an account with an incoming webhook, the incoming webhook's body (mox's
  `webhook.Incoming`: addresses, subject, text and HTML up to 1 MiB, MIME structure, SMTP
  and authentication meta) is written to the queue's outbox.

Both are written with `OutgoingQueue.record_event`, durable before this returns; the
webhook sender (mailsrv/webhooks/sender.py) turns them into webhooks. Parsing the message (the
DSN, the webhook body) runs in the `files` pool: ~50-150 us of CPU for 10 KB, milliseconds for
a large message, which the reactor thread would otherwise spend on every copy.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from twisted.logger import Logger

from mailsrv.address import Address
from mailsrv.message.dsnparse import DSNReport, parse_dsn
from mailsrv.queue import suppression
from mailsrv.queue.interfaces import QueueEvent
from mailsrv.smtpclient.reply import Reply
from mailsrv.webhooks import payload

if TYPE_CHECKING:
    from mailsrv.ops.delivery import Envelope
    from mailsrv.server import Server

log = Logger()

_T = TypeVar("_T")

FROMID = re.compile(r"[A-Za-z0-9_-]{22}")
_ACTIONS = {"failed", "delayed", "delivered", "relayed", "expanded"}


def fromid_of(server: Server, address: Address) -> str:
    """The fromid in a recipient address of ours (`alice+<22 base64url>@example.org`), or ""."""
    domain = server.dynamic.current.domains.get(address.domain.ascii)
    sep = domain.localpart_catchall_separator if domain is not None else None
    if not sep:
        return ""
    _base, found, tag = address.localpart.value.partition(sep)
    return tag if found and FROMID.fullmatch(tag) else ""


async def after_delivery(
    server: Server, envelope: Envelope, rcpt: Address, account: str, mailbox: str, message: bytes, msg_id: int
) -> None:
    """Webhook events for one stored copy (module docstring). Never raises for bad input; a
    failing write raises (the delivery then fails temporarily, as a failing store does)."""
    hooks = server.webhooks
    if hooks is None:
        return
    if hooks.has_outgoing(account) and await _about_outgoing(server, account, rcpt, message):
        return
    if hooks.has_incoming(account):
        meta = payload.IncomingMeta(
            MsgID=msg_id,
            MailFrom=str(envelope.mail_from) if envelope.mail_from is not None else "",
            MailFromValidated=envelope.spf_pass,
            MsgFromValidated=envelope.dmarc_pass,
            RcptTo=rcpt.display(),
            DKIMVerifiedDomains=list(envelope.dkim_domains),
            RemoteIP=envelope.trace.remote_ip,
            Received=payload.rfc3339(time.time()),
            MailboxName="Inbox" if mailbox.upper() == "INBOX" else mailbox,
            Automated=envelope.mail_from is None,
        )
        body = await _parsing(server, _incoming_body, message, meta)
        await server.queue.record_event(_event("incoming", account, rcpt.display(), payload=body))


def _incoming_body(message: bytes, meta: payload.IncomingMeta) -> bytes:
    return payload.encode(payload.incoming(message, meta))


async def _parsing(server: Server, f: Callable[..., _T], *args: Any) -> _T:
    """f(*args), CPU work on a message, in the files pool (at once where there are no pools)."""
    if server.pools is None:
        return f(*args)
    result: _T = await server.pools.files(f, *args)
    return result


def _event(kind: str, account: str, recipient: str, **fields: object) -> QueueEvent:
    return QueueEvent(
        seq=0,
        time=time.time(),
        kind=kind,  # type: ignore[arg-type]
        message_id=int(fields.pop("message_id", 0)),  # type: ignore[call-overload]
        account=account,
        mail_from=str(fields.pop("mail_from", "")),
        recipient=recipient,
        host=str(fields.pop("host", "")),
        code=int(fields.pop("code", 0)),  # type: ignore[call-overload]
        reply=str(fields.pop("reply", "")),
        **fields,  # type: ignore[arg-type]
    )


async def _about_outgoing(server: Server, account: str, rcpt: Address, message: bytes) -> bool:
    """Outgoing events for a DSN or a message to a fromid address; False for other mail."""
    fromid = fromid_of(server, rcpt)
    report = await _parsing(server, parse_dsn, message)
    if not fromid and report is None:
        return False
    queue_id = await server.queue.find_by_fromid(account, fromid) if fromid else None
    if queue_id is None and report is not None and report.original_message_id:
        queue_id = await server.queue.find_by_message_id(account, report.original_message_id)
    if report is None:
        # A reply or bounce that is no DSN, to an address only our outgoing mail used.
        await server.queue.record_event(
            _event("unrecognized", account, rcpt.display(), message_id=queue_id or 0, fromid=fromid)
        )
        return True
    if queue_id is None:
        log.info("{account}: DSN matching no queued or retired message", account=account)
    await _record_reports(server, account, report, queue_id or 0, fromid)
    return True


async def _record_reports(server: Server, account: str, report: DSNReport, queue_id: int, fromid: str) -> None:
    for r in report.recipients:
        kind = r.action if r.action in _ACTIONS and queue_id else "unrecognized"
        code = r.code or (550 if r.status.startswith("5") else 450 if r.status.startswith("4") else 0)
        text = r.diagnostic or r.status
        if r.status and r.status not in text:
            text = f"{r.status} {text}".strip()
        suppressing = False
        if kind == "failed":
            reply = Reply(code or 550, (text,))
            if suppression.suppresses(reply):
                base = suppression.base_address(r.final_recipient, suppression.separators(server.dynamic))
                _entry, suppressing = await server.queue.add_suppression(
                    account, base, r.final_recipient, False, f"DSN: {' '.join(text.split())}"[:1000]
                )
        await server.queue.record_event(
            _event(
                kind,
                account,
                r.final_recipient,
                message_id=queue_id,
                host=r.remote_mta,
                code=code,
                reply=f"{code} {text}" if code else text,
                dsn=True,
                suppressing=suppressing,
                fromid=fromid,
            )
        )
