"""Webhook bodies, wire-compatible with mox's `webhook` package (version 0): `Outgoing` for
events about outgoing deliveries, `Incoming` for a message delivered to an account. Field
names are mox's (Go's exported names as JSON keys); times are RFC 3339 in UTC with
fractional seconds, as Go's time.Time encodes them; maps and lists are never null.

Receivers should ignore fields they do not know (mox says the same): fields may be added.
"""

from __future__ import annotations

import datetime
import email.utils
import re
from email.header import decode_header, make_header

import msgspec

from mailsrv.message.parse import body_text, header_end, parse_headers, parse_message
from mailsrv.message.part import EnvelopeAddress, Part

VERSION = 0
MAX_TEXT = 1024 * 1024  # Text and HTML are cut at 1 MiB (mox: MessagePartGet gives the rest)
MAX_STRUCTURE_PARTS = 1000

OUTGOING_EVENTS = ("delivered", "suppressed", "delayed", "failed", "relayed", "expanded", "canceled", "unrecognized")


def rfc3339(t: float) -> str:
    """`2026-12-07T01:02:03.456789Z`, as Go encodes a UTC time.Time."""
    dt = datetime.datetime.fromtimestamp(t, datetime.UTC)
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if dt.microsecond:
        text += f".{dt.microsecond:06d}".rstrip("0")
    return text + "Z"


class Outgoing(msgspec.Struct, kw_only=True):
    Version: int = VERSION
    Event: str
    DSN: bool = False  # learned from an incoming DSN
    Suppressing: bool = False  # this failure put the address on the suppression list
    QueueMsgID: int = 0
    FromID: str = ""
    MessageID: str = ""  # with <>
    Subject: str = ""
    WebhookQueued: str = ""  # RFC 3339
    SMTPCode: int = 0  # failures only
    SMTPEnhancedCode: str = ""
    Error: str = ""
    Extra: dict[str, str] = {}


class NameAddress(msgspec.Struct, kw_only=True):
    Name: str = ""
    Address: str


class Structure(msgspec.Struct, kw_only=True):
    ContentType: str  # lower case, e.g. text/plain
    ContentTypeParams: dict[str, str] = {}
    ContentID: str = ""
    DecodedSize: int = 0
    Parts: list[Structure] = []


class IncomingMeta(msgspec.Struct, kw_only=True):
    MsgID: int = 0  # the message's id in storage (webapi MessageGet)
    MailFrom: str = ""
    MailFromValidated: bool = False  # SPF pass for MAIL FROM's domain
    MsgFromValidated: bool = False  # DMARC pass for the From: domain
    RcptTo: str = ""
    DKIMVerifiedDomains: list[str] = []
    RemoteIP: str = ""
    Received: str = ""  # RFC 3339
    MailboxName: str = "Inbox"
    Automated: bool = False  # do not send automatic replies to it


class Incoming(msgspec.Struct, kw_only=True):
    Version: int = VERSION
    From: list[NameAddress] = []
    To: list[NameAddress] = []
    CC: list[NameAddress] = []
    BCC: list[NameAddress] = []
    ReplyTo: list[NameAddress] = []
    Subject: str = ""
    MessageID: str = ""
    InReplyTo: str = ""
    References: list[str] = []
    Date: str | None = None  # RFC 3339; None when absent or unreadable
    Text: str = ""
    HTML: str = ""
    Structure: Structure
    Meta: IncomingMeta


_encoder = msgspec.json.Encoder()


def encode(payload: Outgoing | Incoming) -> bytes:
    return _encoder.encode(payload)


# --- outgoing ------------------------------------------------------------------------------------------------------

_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})\b")


def outgoing(
    event: str,
    *,
    queue_id: int,
    queued_at: float,
    code: int = 0,
    reply: str = "",
    dsn: bool = False,
    suppressing: bool = False,
    fromid: str = "",
    message_id: str = "",
    subject: str = "",
    extra: dict[str, str] | None = None,
) -> Outgoing:
    """The body for an outgoing event. `reply` is "NNN text" (our attempt's last reply) or the
    DSN's diagnostic; code and error are left out for "delivered" (mox: failures only)."""
    text = reply[4:] if reply[:3].isdigit() and reply[3:4] in (" ", "-") else reply
    enhanced = _ENHANCED.match(text)
    failure = event != "delivered"
    return Outgoing(
        Event=event,
        DSN=dsn,
        Suppressing=suppressing,
        QueueMsgID=queue_id,
        FromID=fromid,
        MessageID=message_id,
        Subject=subject,
        WebhookQueued=rfc3339(queued_at),
        SMTPCode=code if failure else 0,
        SMTPEnhancedCode=enhanced.group(0) if failure and enhanced else "",
        Error=text if failure else "",
        Extra=dict(extra or {}),
    )


# --- incoming ------------------------------------------------------------------------------------------------------


def _decoded(value: str | None) -> str:
    if not value:
        return ""
    try:
        return str(make_header(decode_header(value)))
    except Exception:
        return value


def _addresses(items: tuple[EnvelopeAddress, ...]) -> list[NameAddress]:
    out = []
    for a in items:
        if a.mailbox is None or a.host is None:
            continue  # group start or end
        out.append(NameAddress(Name=_decoded(a.name), Address=f"{a.mailbox}@{a.host}"))
    return out


def _date(value: str | None) -> str | None:
    if not value:
        return None
    try:
        dt = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.UTC)
    return rfc3339(dt.timestamp())


def structure(part: Part, raw: bytes, budget: list[int] | None = None) -> Structure:
    """mox's Structure of a parsed part: content type, parameters, Content-ID, decoded size."""
    budget = budget if budget is not None else [MAX_STRUCTURE_PARTS]
    budget[0] -= 1
    children = []
    for child in part.children:
        if budget[0] <= 0:
            break
        children.append(structure(child, raw, budget))
    size = 0
    if not part.children:
        body = raw[part.body_start : part.body_end]
        size = len(body) if part.encoding in ("7bit", "8bit", "binary") else _decoded_size(part, body)
    return Structure(
        ContentType=f"{part.media_type}/{part.media_subtype}".lower(),
        ContentTypeParams=dict(part.params),
        ContentID=part.content_id or "",
        DecodedSize=size,
        Parts=children,
    )


def _decoded_size(part: Part, body: bytes) -> int:
    from mailsrv.message.parse import decode_body

    data = decode_body(part, body)
    return len(data) if data is not None else len(body)


def _first_text(part: Part, raw: bytes, subtype: str, depth: int = 0) -> str | None:
    """The first text/<subtype> part that is not an attachment, decoded, "\\n" line ends."""
    if depth > 20:
        return None
    if part.media_type == "text" and part.media_subtype == subtype and part.disposition != "attachment":
        text = body_text(part, raw[part.body_start : part.body_end]).replace("\r\n", "\n")
        return _cut(text)
    if part.media_type == "multipart":
        for child in part.children:
            found = _first_text(child, raw, subtype, depth + 1)
            if found is not None:
                return found
    return None


def _cut(text: str) -> str:
    data = text.encode("utf-8")
    if len(data) <= MAX_TEXT:
        return text
    return data[:MAX_TEXT].decode("utf-8", "ignore")


def is_automated(raw: bytes) -> bool:
    """Whether the message says it was sent automatically or to a list, so that no automatic
    reply should go to it: Auto-Submitted other than "no" (RFC 3834 §5), List-Id/List-Unsubscribe
    (RFC 2919, 2369), Precedence bulk/list/junk, or a null reverse-path style sender."""
    headers = parse_headers(raw[: header_end(raw, 0, len(raw))])
    auto = (headers.get("Auto-Submitted") or "").strip().lower()
    if auto and auto != "no":
        return True
    if headers.get("List-Id") is not None or headers.get("List-Unsubscribe") is not None:
        return True
    precedence = (headers.get("Precedence") or "").strip().lower()
    return precedence in ("bulk", "list", "junk")


def incoming(raw: bytes, meta: IncomingMeta) -> Incoming:
    """The incoming webhook's body for a stored message `raw`."""
    root = parse_message(raw)
    env = root.envelope
    headers = parse_headers(raw[: header_end(raw, 0, len(raw))])
    references = (headers.get("References") or "").split()
    meta.Automated = meta.Automated or is_automated(raw)
    return Incoming(
        From=_addresses(env.from_) if env else [],
        To=_addresses(env.to) if env else [],
        CC=_addresses(env.cc) if env else [],
        BCC=_addresses(env.bcc) if env else [],
        # ENVELOPE's reply-to defaults to From (RFC 9051); the webhook wants the field itself.
        ReplyTo=_addresses(env.reply_to) if env and headers.get("Reply-To") is not None else [],
        Subject=_decoded(env.subject) if env else "",
        MessageID=(env.message_id or "").strip() if env else "",
        InReplyTo=(env.in_reply_to or "").strip() if env else "",
        References=[r for r in references if r.startswith("<")][:1000],
        Date=_date(env.date) if env else None,
        Text=_first_text(root, raw, "plain") or "",
        HTML=_first_text(root, raw, "html") or "",
        Structure=structure(root, raw),
        Meta=meta,
    )
