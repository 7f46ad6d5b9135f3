"""Composing a message from what a webmail or web API user fills in: addresses, subject, a text
and/or HTML body, attachments, and the reply fields. The result is bytes ready for
`ops.submission.submit` (which checks From:, signs and delivers).

    message = compose(Draft(from_=Mailbox(address="alice@example.org"), to=[...], subject="Hi", text="..."))
    result = await send(server, "alice", None, draft)   # compose + resolve + submit

Invariants:
- MIME per RFC 2045-2049: text only is one text/plain part; text and HTML a multipart/alternative
  (plain first, RFC 2046 §5.1.4); attachments make a multipart/mixed around it; every text part
  is UTF-8, quoted-printable or base64, whichever is shorter (the email package decides).
- Non-ASCII display names and subjects are RFC 2047 encoded words; non-ASCII attachment file
  names use RFC 2231 parameters. A non-ASCII address (RFC 6531) makes the whole header block
  UTF-8 (RFC 6532) and the send needs SMTPUTF8.
- Header values never carry CR or LF (no header injection through a subject or a name).
- Message-ID and Date are set here (RFC 5322 §3.6.4, §3.6.1); a reply gets In-Reply-To and
  References (RFC 5322 §3.6.4: the parent's References, or In-Reply-To, plus its Message-ID,
  bounded to the last `MAX_REFERENCES` ids).
- Bcc recipients are envelope recipients only, never a header field.
"""

from __future__ import annotations

import datetime
import email
import email.policy
import email.utils
import os
import random
import re
import time
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

import msgspec
from twisted.logger import Logger

from mailsrv.address import Address, AddressError
from mailsrv.ops.compose_fast import FieldValue, text_transfer_encoding, write_message
from mailsrv.ops.errors import InvalidInput, LimitExceeded

if TYPE_CHECKING:
    from mailsrv.ops.delivery import DeliveryResult, Envelope
    from mailsrv.server import Server

log = Logger()

MAX_REFERENCES = 20
MAX_RECIPIENTS = 1000
MAX_SUBJECT = 998  # one header line's worth (RFC 5322 §2.1.1)
_MSG_ID = re.compile(r"<[^<>\s]{1,250}>")


class Mailbox(msgspec.Struct, frozen=True):
    """An address with an optional display name."""

    address: str
    name: str = ""


class Attachment(msgspec.Struct, frozen=True):
    filename: str
    data: bytes
    content_type: str = "application/octet-stream"
    inline: bool = False  # shown in the body (Content-Disposition: inline), e.g. an image the HTML refers to
    content_id: str = ""  # for cid: references from the HTML, without <>


class ReplyTo(msgspec.Struct, frozen=True):
    """The message being answered: its Message-ID and References (as in its header)."""

    message_id: str
    references: list[str] = []


class Draft(msgspec.Struct, kw_only=True):
    from_: Mailbox = msgspec.field(name="from")
    to: list[Mailbox] = []
    cc: list[Mailbox] = []
    bcc: list[Mailbox] = []
    reply_to: list[Mailbox] = []
    subject: str = ""
    text: str = ""
    html: str = ""
    attachments: list[Attachment] = []
    in_reply_to: ReplyTo | None = None
    # For API clients (the webapi) that build the message themselves:
    message_id: str = ""  # "<unique@domain>"; made up when empty
    references: list[str] = []  # the thread, oldest first, when there is no `in_reply_to`: In-Reply-To is the last
    date: datetime.datetime | None = None  # the Date: field; now when None
    headers: list[tuple[str, str]] = []  # further fields (List-Unsubscribe, ...), never ones compose writes itself
    alternatives: list[Attachment] = []  # other renderings of the body, in the multipart/alternative
    related: list[Attachment] = []  # files the HTML shows (cid:), in a multipart/related around the body


class Composed(msgspec.Struct, frozen=True):
    data: bytes
    message_id: str
    recipients: list[str]  # To, Cc and Bcc addresses, once each, in order
    smtputf8: bool


def _parse(mailbox: Mailbox, field: str) -> Address:
    try:
        return Address.parse(mailbox.address)
    except AddressError as e:
        raise InvalidInput(f"{field}: invalid address {mailbox.address!r}: {e}", field=field) from None


def _no_line_breaks(value: str, field: str) -> str:
    if "\r" in value or "\n" in value or "\0" in value:
        raise InvalidInput(f"{field}: line breaks are not allowed", field=field)
    return value


def _header_address(mailbox: Mailbox, address: Address, field: str, utf8: bool) -> HeaderAddress:
    name = _no_line_breaks(mailbox.name, field)
    domain = address.domain.unicode if utf8 else address.domain.ascii
    # username/domain rather than addr_spec: the email package refuses a non-ASCII addr_spec.
    return HeaderAddress(display_name=name, username=address.localpart.value, domain=domain)


def reply_fields(reply: ReplyTo) -> tuple[str, str]:
    """(In-Reply-To, References) for a reply to `reply` (RFC 5322 §3.6.4)."""
    parent = reply.message_id.strip()
    if not _MSG_ID.fullmatch(parent):
        raise InvalidInput("in_reply_to: not a Message-ID", field="in_reply_to")
    refs = [r for r in reply.references if _MSG_ID.fullmatch(r.strip())]
    chain = [*refs, parent][-MAX_REFERENCES:]
    return parent, " ".join(chain)


def reply_subject(subject: str) -> str:
    """`Re: <subject>`, without piling up prefixes."""
    return subject if re.match(r"(?i)\s*re\s*:", subject) else f"Re: {subject}"


def compose(draft: Draft, message_id: str | None = None, *, for_drafts: bool = False) -> Composed:
    """The message for `draft`. Raises InvalidInput (addresses, line breaks) or LimitExceeded
    (too many recipients). `for_drafts`: a message to keep in the Drafts mailbox, not to send:
    it may have no recipient yet and keeps its Bcc recipients in a Bcc field (RFC 5322 §3.6.3)."""
    sender = _parse(draft.from_, "from")
    groups: dict[str, list[tuple[Mailbox, Address]]] = {}
    for field, mailboxes in (("to", draft.to), ("cc", draft.cc), ("bcc", draft.bcc), ("reply_to", draft.reply_to)):
        groups[field] = [(m, _parse(m, field)) for m in mailboxes]
    recipients: list[str] = []
    seen: set[str] = set()
    for field in ("to", "cc", "bcc"):
        for _, address in groups[field]:
            if address.key() not in seen:
                seen.add(address.key())
                recipients.append(str(address))
    if not recipients and not for_drafts:
        raise InvalidInput("the message needs a recipient", field="to")
    if len(recipients) > MAX_RECIPIENTS:
        raise LimitExceeded(f"at most {MAX_RECIPIENTS} recipients")
    subject = _no_line_breaks(draft.subject, "subject")
    if len(subject) > MAX_SUBJECT:
        raise InvalidInput(f"subject: at most {MAX_SUBJECT} characters", field="subject")
    all_addresses = [sender, *(a for field in groups.values() for _, a in field)]
    smtputf8 = not all(a.localpart.value.isascii() for a in all_addresses)
    fields: list[tuple[str, FieldValue]] = [("From", [_header_address(draft.from_, sender, "from", smtputf8)])]
    shown = (("to", "To"), ("cc", "Cc"), ("reply_to", "Reply-To"))
    for field, header in (*shown, ("bcc", "Bcc")) if for_drafts else shown:
        if groups[field]:
            fields.append((header, [_header_address(m, a, field, smtputf8) for m, a in groups[field]]))
    fields.append(("Subject", subject))
    fields.append(("Date", _date_field(draft.date)))
    if message_id is None:
        message_id = _given_message_id(draft.message_id) if draft.message_id else None
    if message_id is None:
        message_id = new_message_id(sender.domain.ascii)
    fields.append(("Message-ID", message_id))
    if draft.in_reply_to is not None:
        in_reply_to, references = reply_fields(draft.in_reply_to)
        fields += [("In-Reply-To", in_reply_to), ("References", references)]
    elif draft.references:
        refs = [_no_line_breaks(r.strip(), "references") for r in draft.references if r.strip()][-MAX_REFERENCES:]
        if refs:
            fields += [("In-Reply-To", refs[-1]), ("References", " ".join(refs))]
    if len(draft.headers) > MAX_HEADERS:
        raise LimitExceeded(f"at most {MAX_HEADERS} extra header fields")
    for name, value in draft.headers:
        _check_extra_header(name, value)
        fields.append((name, value))
    text = draft.text or ("" if draft.html or draft.alternatives else "\n")
    data = None
    if not (smtputf8 or draft.alternatives or draft.related or draft.attachments):
        data = write_message(fields, text, draft.html)  # the same bytes, without the email package
    if data is None:
        data = _with_email_package(draft, fields, text, smtputf8)
    return Composed(data=data, message_id=message_id, recipients=recipients, smtputf8=smtputf8)


def new_message_id(domain: str) -> str:
    """`<time.pid.random@domain>`: email.utils.make_msgid's form, without the host name lookup
    (socket.getfqdn) it makes on every call."""
    return f"<{int(time.time() * 100)}.{os.getpid()}.{random.getrandbits(64)}@{domain}>"


_now_field: tuple[int, str] = (0, "")  # (second, the Date: value for now then)


def _date_field(date: datetime.datetime | None) -> str:
    """The Date: field's value as the email package writes it (it parses the value given and
    formats the time again). The value for now is made once a second."""
    global _now_field
    if date is None:
        second = int(time.time())
        if _now_field[0] != second:
            _now_field = (second, _date_field(datetime.datetime.now(datetime.UTC).astimezone()))
        return _now_field[1]
    else:
        if date.tzinfo is None:
            raise InvalidInput("date: a time zone is needed", field="date")
        value = email.utils.format_datetime(date)
    return email.utils.format_datetime(email.utils.parsedate_to_datetime(value))


def _with_email_package(draft: Draft, fields: list[tuple[str, FieldValue]], text: str, smtputf8: bool) -> bytes:
    # RFC 6532 when an address needs it; else 7-bit headers with encoded words (RFC 2047).
    policy = email.policy.SMTPUTF8 if smtputf8 else email.policy.SMTP
    msg = EmailMessage(policy=policy)
    for name, value in fields:
        msg[name] = value
    if text or not draft.html:
        msg.set_content(text, charset="utf-8", cte=text_transfer_encoding(text))
        if draft.html:
            msg.add_alternative(draft.html, subtype="html", charset="utf-8", cte=text_transfer_encoding(draft.html))
    else:
        msg.set_content(draft.html, subtype="html", charset="utf-8", cte=text_transfer_encoding(draft.html))
    for alternative in draft.alternatives:
        maintype, subtype = _content_type(alternative)
        msg.add_alternative(alternative.data, maintype=maintype, subtype=subtype, disposition="inline")
    if draft.related:
        _wrap(msg, "related")  # RFC 2387: the body first, then what it refers to
        for inline in draft.related:
            msg.attach(_file_part(inline, policy, related=True))
    if draft.attachments:
        _wrap(msg, "mixed")
        for attachment in draft.attachments:
            msg.attach(_file_part(attachment, policy))
    for part in _parts(msg):
        if part is not msg:
            del part["MIME-Version"]  # only the top level carries it (RFC 2045 §4)
    return msg.as_bytes()


def _parts(msg: EmailMessage) -> list[EmailMessage]:
    """The message and its parts, not descending into attached messages (kept as they are)."""
    out = [msg]
    if msg.get_content_maintype() == "multipart":
        for child in msg.iter_parts():
            out.extend(_parts(child))  # type: ignore[arg-type]
    return out


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,127}")
_FIELD_NAME = re.compile(r"[!-9;-~]{1,76}")  # RFC 5322 §3.6.8 ftext, within one line
# Fields compose writes: a caller's own would make a second one (two From: fields, a forged
# MIME structure).
_COMPOSED_FIELDS = frozenset(
    {"from", "sender", "to", "cc", "bcc", "reply-to", "subject", "date", "message-id", "in-reply-to"}
    | {"references", "mime-version", "content-type", "content-transfer-encoding", "content-disposition"}
)
MAX_HEADERS = 100


def _given_message_id(value: str) -> str:
    value = value.strip()
    if not _MSG_ID.fullmatch(value):
        raise InvalidInput("message_id: expected <unique@domain>", field="message_id")
    return value


def _check_extra_header(name: str, value: str) -> None:
    if not _FIELD_NAME.fullmatch(name):
        raise InvalidInput(f"headers: invalid field name {name!r}", field="headers")
    if name.lower() in _COMPOSED_FIELDS:
        raise InvalidInput(f"headers: {name} is set from the message's own fields", field="headers")
    if any((ord(c) < 0x20 and c != "\t") or c == "\x7f" for c in value):
        raise InvalidInput(f"headers: {name}: line breaks and control characters are not allowed", field="headers")
    if len(name) + len(value) > 4000:
        raise InvalidInput(f"headers: {name}: value too long", field="headers")


def _content_type(attachment: Attachment) -> tuple[str, str]:
    maintype, _, subtype = attachment.content_type.partition("/")
    if not (_TOKEN.fullmatch(maintype) and _TOKEN.fullmatch(subtype)):
        raise InvalidInput(f"attachment {attachment.filename!r}: bad content type", field="attachments")
    return maintype, subtype


def _wrap(msg: EmailMessage, subtype: str) -> None:
    """Makes `msg` a multipart/`subtype` whose first part is what its body was (the email
    package's own make_related refuses to wrap a multipart/alternative)."""
    if msg.get_content_type() == f"multipart/{subtype}":
        return
    inner = EmailMessage(policy=msg.policy)
    for name in list(msg.keys()):
        if name.lower().startswith("content-") and name in msg:
            for v in msg.get_all(name, []):
                inner[name] = v
            del msg[name]
    inner.set_payload(msg.get_payload())
    msg.set_payload([inner])
    msg["Content-Type"] = f"multipart/{subtype}"


def _file_part(attachment: Attachment, policy: Any, related: bool = False) -> EmailMessage:
    maintype, subtype = _content_type(attachment)
    filename = _no_line_breaks(attachment.filename, "attachments").replace("/", "_").replace("\\", "_")
    cid = None
    if attachment.content_id:
        if not _MSG_ID.fullmatch(f"<{attachment.content_id}>"):
            raise InvalidInput("attachment content_id: not an id", field="attachments")
        cid = f"<{attachment.content_id}>"
    part = EmailMessage(policy=policy)
    disposition = "inline" if attachment.inline or related else "attachment"
    if attachment.content_type.lower() == "message/rfc822":
        # RFC 2046 §5.2.1: no base64 for message/rfc822; the message goes in as it is (7bit or 8bit).
        inner = email.message_from_bytes(attachment.data, policy=policy)
        part.set_content(inner, filename=filename or None, disposition=disposition)
        return part
    # A text attachment keeps its bytes (no charset guessing): added as application data, then
    # labelled with its own type.
    is_text = maintype.lower() == "text"
    part.set_content(
        attachment.data,
        maintype="application" if is_text else maintype,
        subtype="octet-stream" if is_text else subtype,
        filename=filename or None,
        disposition=disposition,
        cid=cid,
    )
    if is_text:
        part.replace_header("Content-Type", attachment.content_type)
        if filename:
            part.set_param("name", filename)
    return part


class MessageTooLarge(LimitExceeded):
    """The composed message is larger than `[limits] max_message_size`."""

    code = "messageTooLarge"


class SentOverQuota(LimitExceeded):
    """The message was sent, but the account has no room for its copy in Sent."""

    code = "sentOverQuota"


class SendOptions(msgspec.Struct, kw_only=True):
    """How a composed message is submitted. `requiretls`: True asks for RFC 8689 REQUIRETLS
    all the way; False adds `TLS-Required: No` (RFC 8689 §5: MTA-STS and DANE failures may be
    ignored); None: the usual policy. `save_sent`: a copy (with its Bcc: field) goes into the
    account's \\Sent mailbox, marked \\Seen: at once, or with `release_at` when the message goes
    out (mailsrv/ops/scheduled.py). `client_name`, `client_ip` and `via` (the protocol,
    "HTTP" or "HTTPS") go into the Received: field."""

    requiretls: bool | None = None
    save_sent: bool = False
    extra: dict[str, str] = {}  # Extra data for the webhooks about the queued copies (ops.submission.submit)
    # Send later: nobody gets the message before this time, recipients on this server neither
    # (ops.delivery queues them too); None: now.
    release_at: datetime.datetime | None = None
    client_name: str = "webmail"
    client_ip: str = ""
    via: str = "HTTP"


class Sent(msgspec.Struct):
    message_id: str
    recipients: list[str]  # To, Cc and Bcc addresses once each, in order (as composed)
    delivery: DeliveryResult  # `queued_recipients`: each remote recipient's queue id and fromid
    saved: bool = False  # a copy went into Sent


async def send(
    server: Server,
    account: str,
    login_address: Address | None,
    draft: Draft,
    client_ip: str = "",
    via: str = "HTTP",
    *,
    requiretls: bool = False,
    composed: Composed | None = None,
) -> DeliveryResult:
    """Composes `draft` and submits it as `account`: recipients resolved as for SMTP submission
    (remote ones queued), From: checked, signed, delivered. `client_ip` and `via` (the protocol,
    "HTTP" or "HTTPS") go into the Received: field; `requiretls` asks for RFC 8689 REQUIRETLS
    onward; `composed`: `compose(draft)` already made by the caller (who keeps a copy, e.g. in
    Sent). Raises the errors of `compose`, `resolve_recipient` and `submit`."""
    options = SendOptions(requiretls=True if requiretls else None, client_ip=client_ip, via=via)
    sent = await send_message(server, account, login_address, draft, options, composed=composed)
    return sent.delivery


async def send_message(
    server: Server,
    account: str,
    login_address: Address | None,
    draft: Draft,
    options: SendOptions,
    *,
    composed: Composed | None = None,
) -> Sent:
    """`send` with the options of SendOptions. Raises the errors of `compose`, MessageTooLarge,
    the errors of `resolve_recipient` and `submit`, and SentOverQuota (after sending)."""
    from mailsrv.ops.delivery import Envelope, Trace, resolve_recipient
    from mailsrv.ops.submission import check_envelope_sender, submit

    if composed is None:
        composed = compose(draft)
    data = composed.data
    if options.requiretls is False:
        data = b"TLS-Required: No\r\n" + data
    if len(data) > server.config.limits.max_message_size:
        raise MessageTooLarge(f"message too large: at most {server.config.limits.max_message_size} octets")
    sender = Address.parse(draft.from_.address)
    check_envelope_sender(server, account, login_address, sender)
    envelope = Envelope(
        mail_from=sender,
        smtputf8=composed.smtputf8,
        trace=Trace(helo=options.client_name, remote_ip=options.client_ip, protocol=options.via),
        account=account,
        submission=True,
        requiretls=options.requiretls is True,
        release_at=_release_time(options.release_at),
    )
    held = envelope.release_at > time.time()
    envelope.sent_copy = options.save_sent and held
    for recipient in composed.recipients:
        envelope.recipients.append(await resolve_recipient(server, envelope, Address.parse(recipient)))
    result = await submit(server, envelope, data, login_address, extra=options.extra or None)
    _log_accepted(envelope, result, len(data), options.client_ip)
    sent = Sent(message_id=composed.message_id, recipients=composed.recipients, delivery=result)
    if options.save_sent and not held:
        sent.saved = await _save_sent(server, account, draft, composed)
    return sent


def _log_accepted(envelope: Envelope, result: DeliveryResult, size: int, client_ip: str) -> None:
    """The line SMTP submission logs for an accepted message, for mail sent from webmail and the webapi."""
    from mailsrv.ops.delivery import acceptance

    line = acceptance(envelope, result, size, client_ip or "unknown")
    log.info("{line}", line=line.line(), **line.fields())


MAX_RELEASE_DELAY = 60 * 86400  # how far ahead a FutureRelease may be (mox's limit too)


def _release_time(at: datetime.datetime | None) -> float:
    if at is None:
        return 0.0
    if at.tzinfo is None:
        raise InvalidInput("release time: a time zone is needed", field="release_at")
    when = at.timestamp()
    if when > time.time() + MAX_RELEASE_DELAY:
        raise InvalidInput("release time: at most 60 days ahead", field="release_at")
    return when


async def _save_sent(server: Server, account: str, draft: Draft, composed: Composed) -> bool:
    """The copy in the \\Sent mailbox, with a Bcc: field (only this copy shows it). False when
    the account has no \\Sent mailbox."""
    from mailsrv.store.interfaces import OverQuota

    store = server.stores.open(account)
    sent = next((m for m in await store.mailboxes_async() if m.special_use == "\\Sent"), None)
    if sent is None:
        return False
    data = composed.data
    if draft.bcc:
        bcc = EmailMessage(policy=email.policy.SMTPUTF8 if composed.smtputf8 else email.policy.SMTP)
        bcc["Bcc"] = [_header_address(m, _parse(m, "bcc"), "bcc", composed.smtputf8) for m in draft.bcc]
        data = bcc.as_bytes().split(b"\r\n\r\n", 1)[0] + b"\r\n" + data
    try:
        await store.append(sent.name, data, flags=("\\Seen",))
    except OverQuota:
        raise SentOverQuota("message was sent, but not stored in the Sent mailbox: over quota") from None
    return True
