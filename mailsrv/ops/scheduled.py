"""Send later: what happens at the release time of a message submitted with one (webmail's
"Send later", the webapi's FutureRelease), and the sender's view of such messages.

    runner = QueueRunner(..., local_deliverer=lambda g: deliver_released(server, g),
                         save_sent=lambda *a: save_sent_copy(server, *a))

Invariants:
- Nobody gets a send-later message before its time. `ops.delivery.deliver` queues the
  recipients on this server together with the remote ones (`MessageMeta.local_recipients`);
  at the release time the queue hands them to `deliver_released`, which resolves them again
  and calls `deliver` as an immediate submission would: rules, junk filter, quota, incoming
  webhooks and success DSNs all apply then. Outcomes become queue attempts: a temporary one
  (mailbox full, store unavailable) is retried like any queued recipient, a permanent one
  fails with a DSN to the sender. Durable: the queue's rows and file, across restarts.
- A retried release stores no second copy: `deliver`'s delivery id (sender, recipient,
  message bytes) makes the append idempotent; the Sent copy's id is its queue id.
- The Sent copy of a send-later message is stored when the message goes out (its first
  attempt), not when it is scheduled: the message as the user wrote it (our trace fields
  removed) with a Bcc: field for the recipients not in To/Cc.
- A scheduled message is one no attempt was made for yet and whose time has not come
  (`OutgoingQueue.scheduled`); only those can be cancelled or moved.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from twisted.logger import Logger

from mailsrv.address import Address, AddressError
from mailsrv.message.parse import header_end
from mailsrv.ops import errors
from mailsrv.ops.delivery import Envelope, Trace, deliver, resolve_recipient
from mailsrv.ops.submission import header_field_values
from mailsrv.queue.interfaces import ScheduledMessage
from mailsrv.queue.remote import DomainDelivery
from mailsrv.queue.runner import GroupToDeliver
from mailsrv.smtpclient import Reply
from mailsrv.store.interfaces import AppendResult, FlagMode, OverQuota

if TYPE_CHECKING:
    from mailsrv.server import Server

log = Logger()

DELIVERED = Reply(250, ("2.0.0 delivered at its send-later time",))
# Fields of a queued message that we put on top of what the user wrote: the queue's trace and
# our DKIM signature (Message-ID and Date we added stay: they are the message's own now).
_OUR_FIELDS = (b"received", b"dkim-signature")
_FIELD = re.compile(rb"([^\s:]+)[ \t]*:")


def _reply(error: errors.OpsError) -> Reply:
    """The queue attempt's reply for a delivery refused by ops (RFC 3463 codes as SMTP gives them)."""
    text = " ".join(error.message.split())[:300]
    if isinstance(error, errors.MailboxFull):
        return Reply(452, (f"4.2.2 {text}",))
    if isinstance(error, errors.TemporaryFailure) or (isinstance(error, errors.LimitExceeded) and error.temporary):
        return Reply(451, (f"4.3.0 {text}",))
    if isinstance(error, errors.UnknownRecipient):
        return Reply(550, (f"5.1.1 {text}",))
    if isinstance(error, errors.PermissionDenied):
        return Reply(550, (f"5.7.1 {text}",))
    return Reply(554, (f"5.0.0 {text}",))


async def deliver_released(server: Server, group: GroupToDeliver) -> DomainDelivery:
    """Delivers a send-later message to its recipients on this server (one queue group), as
    an immediate submission by the group's account would have. Never raises: every outcome
    is a reply per recipient."""
    queued = group.envelope
    sender: Address | None = None
    if queued.mail_from:
        sender = Address.parse(queued.mail_from)
    envelope = Envelope(
        mail_from=sender,
        account=group.account or None,
        submission=True,
        trace=Trace(helo=server.config.hostname.ascii, remote_ip="127.0.0.1", protocol="ESMTPA"),
        dsn=queued.dsn,
    )
    replies: dict[str, Reply] = {}
    resolved: list[str] = []
    for i, address in enumerate(queued.recipients):
        try:
            recipient = await resolve_recipient(server, envelope, Address.parse(address))
        except errors.OpsError as e:
            replies[address] = _reply(e)
            continue
        except AddressError:
            replies[address] = Reply(553, ("5.1.3 invalid recipient address",))
            continue
        if queued.recipient_dsn:
            recipient.dsn = queued.recipient_dsn[i]
        envelope.recipients.append(recipient)
        resolved.append(address)
    if resolved:
        try:
            await deliver(server, envelope, group.message)
            reply = DELIVERED
        except errors.OpsError as e:
            reply = _reply(e)
        except Exception:
            log.failure("send-later delivery of queued message {id} failed", id=group.message_id)
            reply = Reply(451, ("4.3.0 local delivery failed, will try again",))
        for address in resolved:
            replies[address] = reply
    # Success DSNs for our recipients were `deliver`'s to send (RFC 3461 §5.2.2.1): the queue
    # must not add a "relayed" one.
    done = frozenset(a for a, r in replies.items() if r.positive)
    return DomainDelivery(replies, dsn_passed=done)


def as_written(message: bytes, recipients: Sequence[str]) -> bytes:
    """A queued message as its sender wrote it: without the trace and signature fields we put
    on top, with a Bcc: field naming the recipients that are not in To: or Cc: (the Sent
    copy, or a draft again)."""
    end = header_end(message, 0, len(message))
    lines = message[:end].split(b"\n")
    start = 0
    while start < len(lines):
        m = _FIELD.match(lines[start])
        if m is None or m.group(1).lower() not in _OUR_FIELDS:
            break
        start += 1
        while start < len(lines) and lines[start][:1] in (b" ", b"\t"):
            start += 1  # the field's continuation lines
    head = b"\n".join(lines[start:])
    rest = message[end:]
    shown = {a.lower() for _, a in email.utils.getaddresses(header_field_values(message, "To"))}
    shown |= {a.lower() for _, a in email.utils.getaddresses(header_field_values(message, "Cc"))}
    hidden = [r for r in recipients if r.lower() not in shown]
    if hidden and not header_field_values(message, "Bcc"):
        head = f"Bcc: {', '.join(hidden)}\r\n".encode() + head
    return head + rest


async def save_sent_copy(
    server: Server, queue_id: int, account: str, message: bytes, recipients: Sequence[str]
) -> None:
    """Stores the Sent copy of send-later message `queue_id` into the account's \\Sent mailbox
    (none: nothing), once: a second call for the same id stores nothing."""
    if not account:
        return
    store = server.stores.open(account)
    sent = next((m for m in await store.mailboxes_async() if m.special_use == "\\Sent"), None)
    if sent is None:
        return
    copy = as_written(message, recipients)
    try:
        await store.append(sent.name, copy, ("\\Seen",), delivery_id=f"sent:{queue_id}")
    except OverQuota:
        log.warn("{account}: no room for the Sent copy of queued message {id}", account=account, id=queue_id)


# --- the sender's view ----------------------------------------------------------------------------------------


async def scheduled(server: Server, account: str, now: float) -> list[ScheduledMessage]:
    """The account's messages waiting for their send-later time, soonest first."""
    return await server.queue.scheduled(account, now)


async def find(server: Server, account: str, queue_id: int, now: float) -> ScheduledMessage:
    """One of `scheduled`. Raises NotFound (sent already, or being sent, or not the account's)."""
    for m in await server.queue.scheduled(account, now):
        if m.id == queue_id:
            return m
    raise errors.NotFound("no such scheduled message (sent already?)")


async def reschedule(server: Server, account: str, queue_id: int, when: float) -> None:
    """Moves the send time of a scheduled message. Raises NotFound."""
    if not await server.queue.reschedule(queue_id, account, when):
        raise errors.NotFound("no such scheduled message (sent already?)")


async def take_back(
    server: Server, account: str, queue_id: int, mailbox: str, now: float, extra_fields: bytes = b""
) -> AppendResult:
    """Cancels a scheduled message and stores it, as written (`as_written`) below
    `extra_fields`, in `mailbox` (\\Draft, \\Seen): stored first, then removed from the
    queue, so that a crash in between leaves it in both places rather than in neither. Raises
    NotFound (the message was sent meanwhile: the stored copy is removed again)."""
    found = await find(server, account, queue_id, now)
    content = await server.queue.read_content(queue_id)
    if content is None:
        raise errors.NotFound("no such scheduled message (sent already?)")
    store = server.stores.open(account)
    draft = extra_fields + as_written(content, found.recipients)
    appended = await store.append(mailbox, draft, ("\\Draft", "\\Seen"))
    if not await server.queue.cancel_scheduled(queue_id, account):
        await store.store_flags(appended.mailbox_id, [appended.uid], FlagMode.ADD, ["\\Deleted"])
        await store.expunge(appended.mailbox_id, [appended.uid])
        raise errors.NotFound("the message was sent meanwhile")
    return appended
