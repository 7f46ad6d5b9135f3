"""One message of an account, named by its stable id: read it (parsed view, raw bytes, one
decoded part) and change it (flags, move, delete) through mailsrv/ops/mail.py.

The id is the store's `MessageSummary.id`: per account, kept when the message moves to another
mailbox (a copy gets a new one), the same id the webapi's `MsgID` and the incoming webhooks'
`Meta.MsgID` carry. `find` turns it into the mailbox and UID the mail operations take.

    view = await message_view(store, 42)            # envelope, text, HTML, structure, meta
    await flags_add(MailContext(store, hooks), 42, ["\\Seen"])

Invariants:
- The parsed view comes from the part tree stored at delivery and ranged reads of the
  file; nothing re-parses the message. Text and HTML are each cut at `text_limit` octets
  (on a character boundary), line ends turned into "\\n".
- Delivery facts (`DeliveryMeta`) are read from the trace fields our own delivery put on
  top of the message: `Delivered-To:` (RCPT TO), our `Received:` (remote IP), and the first
  `Authentication-Results:` with our authserv-id (SPF, DKIM, DMARC verdicts). A received
  field with our authserv-id was renamed at delivery (mailsrv/ops/mailauth.py), so these
  cannot be forged by the sender.
- Errors: `NotFound` (no such message, or a part path that leads nowhere), and the errors
  of mailsrv/ops/mail.py for changes.
"""

from __future__ import annotations

import datetime
import email.utils
import re
from collections.abc import Iterator, Sequence

import msgspec

from mailsrv.message.parse import decode_body, decode_quoted_printable, decode_text, header_end, parse_headers
from mailsrv.message.part import EnvelopeAddress, Part
from mailsrv.ops import mail
from mailsrv.ops.errors import InvalidInput, NotFound
from mailsrv.ops.mail import MailContext
from mailsrv.store.interfaces import AccountStore, MailboxNotFound, MessageSummary

TEXT_LIMIT = 1024 * 1024  # octets of text and of HTML in a view (what mox's webapi and webhooks give)
MAX_PART_DEPTH = 40


class NameAddress(msgspec.Struct, frozen=True):
    """An address of a header field: display name (RFC 2047 decoded, "" when none) and addr-spec."""

    name: str
    address: str


class PartStructure(msgspec.Struct, frozen=True):
    """The MIME structure of a part: lower-case type and disposition, parameters with lower-case
    names, the Content-ID as written, the file name, the size once the transfer encoding is
    undone, and the sub-parts of a multipart (an attached message/rfc822 lists none)."""

    content_type: str
    content_type_params: dict[str, str]
    content_id: str
    content_disposition: str
    filename: str
    decoded_size: int
    parts: list[PartStructure]


class DeliveryMeta(msgspec.Struct, frozen=True):
    """How the message reached the account, from the trace fields of its delivery; empty for a
    message the account stored itself (Sent, Drafts, IMAP APPEND)."""

    mail_from: str = ""  # the SMTP MAIL FROM (from Return-Path:, when present)
    mail_from_validated: bool = False  # SPF passed for the MAIL FROM domain
    rcpt_to: str = ""  # the RCPT TO that reached the account
    msg_from: str = ""  # the From: address
    msg_from_validated: bool = False  # DMARC passed for the From: domain
    dkim_verified_domains: list[str] = []
    remote_ip: str = ""
    dsn: bool = False  # a delivery status notification (multipart/report; report-type=delivery-status)
    automated: bool = False  # list mail, auto-replies, bulk: should get no automatic answer


class MessageView(msgspec.Struct, frozen=True):
    id: int
    mailbox: str
    flags: list[str]
    size: int
    received: datetime.datetime
    from_: list[NameAddress]
    to: list[NameAddress]
    cc: list[NameAddress]
    bcc: list[NameAddress]
    reply_to: list[NameAddress]
    subject: str
    message_id: str
    in_reply_to: str
    references: list[str]  # oldest first; In-Reply-To first when References lacks it
    date: datetime.datetime | None
    text: str
    html: str
    structure: PartStructure
    meta: DeliveryMeta
    headers: dict[
        str, list[str]
    ]  # every field of the message's own header (below our trace fields), by lower-case name


# --- finding ----------------------------------------------------------------------------


async def find(store: AccountStore, message_id: int) -> MessageSummary:
    """The message with this stable id. Raises NotFound."""
    if message_id <= 0:
        raise NotFound("message not found")
    summary = await store.find_message(message_id)
    if summary is None:
        raise NotFound("message not found")
    return summary


# --- reading ----------------------------------------------------------------------------


async def message_raw(store: AccountStore, message_id: int) -> bytes:
    """The message as stored (our trace fields on top). Raises NotFound."""
    await find(store, message_id)
    return await store.read_async(message_id)


async def _tree(store: AccountStore, message_id: int) -> Part:
    """The message's part tree, from the index (not on the reactor's own time for a remote
    store). Raises NotFound when the message went away meanwhile."""
    tree = (await store.part_trees([message_id])).get(message_id)
    if tree is None:
        raise NotFound("no such message")
    return tree


async def message_part(store: AccountStore, message_id: int, path: Sequence[int]) -> tuple[Part, bytes]:
    """The part at `path` (indexes into the sub-parts of multiparts, from the top) and its body
    with the transfer encoding undone. Raises NotFound for a path that leads nowhere."""
    await find(store, message_id)
    part = await _tree(store, message_id)
    for depth, index in enumerate(path):
        if depth >= MAX_PART_DEPTH or not part.is_multipart or not 0 <= index < len(part.children):
            raise NotFound(f"part {index} at index {depth} not found")
        part = part.children[index]
    body = await store.read_async(message_id, part.body_start, part.body_octets)
    decoded = decode_body(part, body)
    return part, body if decoded is None else decoded


async def message_view(store: AccountStore, message_id: int, text_limit: int = TEXT_LIMIT) -> MessageView:
    """The parsed message. Raises NotFound."""
    summary = await find(store, message_id)
    tree = await _tree(store, message_id)
    data = await store.read_async(message_id)
    mailbox = await store.mailbox_by_id_async(summary.mailbox_id)
    trace, own = _split_trace(data, tree)
    env = tree.envelope
    own_headers = parse_headers(data[own : tree.body_start])
    table: dict[str, list[str]] = {}
    for name, value in own_headers.raw_items():
        table.setdefault(name.lower(), []).append(_clean(value))
    references = [w for v in table.get("references", []) for w in v.split() if w]
    in_reply_to = env.in_reply_to.strip() if env is not None and env.in_reply_to else ""
    if in_reply_to and in_reply_to not in references:
        references.insert(0, in_reply_to)
    text, html = _readable_parts(tree, data, text_limit)
    from_ = _addresses(env.from_) if env is not None else []
    return MessageView(
        id=message_id,
        mailbox=mailbox.name,
        flags=list(summary.flags),
        size=summary.size,
        received=datetime.datetime.fromtimestamp(summary.internal_date, datetime.UTC),
        from_=from_,
        to=_addresses(env.to) if env is not None else [],
        cc=_addresses(env.cc) if env is not None else [],
        bcc=_addresses(env.bcc) if env is not None else [],
        reply_to=_addresses(_explicit(table, "reply-to", env.reply_to if env is not None else ())),
        subject=decode_text(env.subject) or "" if env is not None else "",
        message_id=(env.message_id or "").strip() if env is not None else "",
        in_reply_to=in_reply_to,
        references=references,
        date=_date(env.date if env is not None else None),
        text=text,
        html=html,
        structure=structure(tree, data),
        meta=_meta(trace, table, tree, from_),
        headers=table,
    )


def _clean(value: object) -> str:
    text = str(value).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return " ".join(line.strip() for line in text.replace("\r", "").split("\n")).strip()


def _explicit(
    table: dict[str, list[str]], name: str, addresses: tuple[EnvelopeAddress, ...]
) -> tuple[EnvelopeAddress, ...]:
    # The envelope fills Reply-To from From when absent (IMAP's rule); a view shows only what is there.
    return addresses if name in table else ()


def _addresses(addresses: tuple[EnvelopeAddress, ...]) -> list[NameAddress]:
    out = []
    for a in addresses:
        if a.host is None or a.mailbox is None:
            continue  # group start or end (RFC 5322 §3.4 group syntax)
        out.append(NameAddress(name=decode_text(a.name) or "", address=f"{a.mailbox}@{a.host}"))
    return out


def _date(value: str | None) -> datetime.datetime | None:
    if not value:
        return None
    try:
        date = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if date.tzinfo is None:
        date = date.replace(tzinfo=datetime.UTC)  # RFC 5322 §3.3 "-0000": no zone information
    return date


def _leaves(part: Part, depth: int = 0) -> Iterator[Part]:
    if part.is_multipart:
        if depth < MAX_PART_DEPTH:
            for child in part.children:
                yield from _leaves(child, depth + 1)
        return
    yield part  # an attached message counts as one leaf: its text is not this message's


def _readable_parts(tree: Part, data: bytes, limit: int) -> tuple[str, str]:
    """The first text/plain and the first text/html part that is not an attachment."""
    found: dict[str, str] = {}
    for leaf in _leaves(tree):
        if leaf.media_type != "text" or leaf.media_subtype not in ("plain", "html") or leaf.media_subtype in found:
            continue
        if leaf.disposition == "attachment":
            continue
        decoded = decode_body(leaf, data[leaf.body_start : leaf.body_end])
        raw = decoded if decoded is not None else data[leaf.body_start : leaf.body_end]
        text = _decode_charset(raw[:limit], leaf.params.get("charset", "utf-8"))
        found[leaf.media_subtype] = text.replace("\r\n", "\n")
        if len(found) == 2:
            break
    return found.get("plain", ""), found.get("html", "")


def _decode_charset(raw: bytes, charset: str) -> str:
    try:
        return raw.decode(charset, "replace")
    except (LookupError, ValueError):
        return raw.decode("utf-8", "replace")


_BASE64_CHARS = re.compile(rb"[A-Za-z0-9+/]")


def decoded_size(part: Part, body: bytes) -> int:
    """Octets of the body once its transfer encoding is undone (base64 counted, not decoded)."""
    if part.encoding == "base64":
        count = len(_BASE64_CHARS.findall(body.split(b"=", 1)[0]))
        return count * 3 // 4
    if part.encoding == "quoted-printable":
        return len(decode_quoted_printable(body))
    return len(body)


def structure(part: Part, data: bytes, depth: int = 0) -> PartStructure:
    """The MIME structure of `part` (see PartStructure)."""
    children = []
    if part.is_multipart and depth < MAX_PART_DEPTH:
        children = [structure(c, data, depth + 1) for c in part.children]
    filename = part.disposition_params.get("filename") or part.params.get("name") or ""
    return PartStructure(
        content_type=f"{part.media_type}/{part.media_subtype}",
        content_type_params=dict(part.params),
        content_id=part.content_id or "",
        content_disposition=(part.disposition or "").lower(),
        filename=decode_text(filename) or "",
        decoded_size=0 if part.is_multipart else decoded_size(part, data[part.body_start : part.body_end]),
        parts=children,
    )


# --- delivery facts ---------------------------------------------------------------------

_TRACE_FIELDS = frozenset({"delivered-to", "received", "authentication-results", "return-path", "x-mailsrv-junk"})
_RECEIVED_IP = re.compile(r"\(\[([0-9A-Fa-f:.]+)\]\)")
_RESULT = re.compile(r"(?:^|;)\s*(spf|dkim|dmarc)=(\w+)([^;]*)", re.IGNORECASE)
_PROPERTY = re.compile(r"(header\.d|header\.from|smtp\.mailfrom)=\"?([^\s\";]+)", re.IGNORECASE)


def _split_trace(data: bytes, tree: Part) -> tuple[list[tuple[str, str]], int]:
    """The trace fields on top of the header (ours: delivery prepends them) and the offset
    where the message's own header starts."""
    end = header_end(data, tree.header_start, tree.body_start)
    fields: list[tuple[str, str]] = []
    offset = tree.header_start
    for name, start, stop in _fields(data, tree.header_start, end):
        if name.lower() not in _TRACE_FIELDS:
            break
        fields.append((name.lower(), _clean(data[start:stop].decode("utf-8", "replace"))))
        offset = stop
    return fields, offset


_FIELD_NAME = re.compile(rb"([!-9;-~]+)[ \t]*:")


def _fields(data: bytes, start: int, end: int) -> Iterator[tuple[str, int, int]]:
    """(name, value start, field end) per header field in data[start:end]."""
    pos = start
    while pos < end:
        m = _FIELD_NAME.match(data, pos, end)
        if m is None:
            return
        stop = pos
        while True:
            nl = data.find(b"\n", stop, end)
            stop = end if nl < 0 else nl + 1
            if stop >= end or data[stop : stop + 1] not in (b" ", b"\t"):
                break
        yield m.group(1).decode("ascii"), m.end(), stop
        pos = stop


def _meta(
    trace: list[tuple[str, str]], own: dict[str, list[str]], tree: Part, from_: list[NameAddress]
) -> DeliveryMeta:
    rcpt_to = next((v for n, v in trace if n == "delivered-to"), "")
    mail_from = next((v for n, v in trace if n == "return-path"), "").strip().strip("<>")
    remote_ip = ""
    for name, value in trace:
        if name == "received" and "(mailsrv)" in value:
            m = _RECEIVED_IP.search(value)
            remote_ip = m.group(1) if m else ""
            break
    spf = dmarc = False
    dkim: list[str] = []
    results = next((v for n, v in trace if n == "authentication-results"), None)
    if results is not None:
        for method, result, props in (m.groups() for m in _RESULT.finditer(results)):
            if result.lower() != "pass":
                continue
            method = method.lower()
            domains = [v for k, v in _PROPERTY.findall(props) if k.lower() == "header.d"]
            if method == "spf":
                spf = spf or "smtp.mailfrom" in props.lower()
            elif method == "dmarc":
                dmarc = True
            elif method == "dkim" and domains and domains[0].lower() not in dkim:
                dkim.append(domains[0].lower())
    report_type = tree.params.get("report-type", "").lower()
    is_dsn = (tree.media_type, tree.media_subtype) == ("multipart", "report") and report_type in (
        "delivery-status",
        "global-delivery-status",
    )
    return DeliveryMeta(
        mail_from=mail_from,
        mail_from_validated=spf,
        rcpt_to=rcpt_to,
        msg_from=from_[0].address if from_ else "",
        msg_from_validated=dmarc,
        dkim_verified_domains=dkim,
        remote_ip=remote_ip,
        dsn=is_dsn,
        automated=is_automated(own),
    )


def is_automated(headers: dict[str, list[str]]) -> bool:
    """Whether the message was sent by a program or to a list (RFC 3834 §2: Auto-Submitted other
    than "no"; RFC 2369/2919 List-* fields; the common Precedence: bulk/list/junk), so it
    should get no automatic reply."""
    auto = [v.split(";")[0].strip().lower() for v in headers.get("auto-submitted", [])]
    if any(v and v != "no" for v in auto):
        return True
    if any(name in headers for name in ("list-id", "list-unsubscribe", "list-post", "x-auto-response-suppress")):
        return True
    return any(v.strip().lower() in ("bulk", "list", "junk") for v in headers.get("precedence", []))


# --- changing ---------------------------------------------------------------------------


async def flags_add(ctx: MailContext, message_id: int, flags: Sequence[str]) -> None:
    """Adds flags/keywords to the message. Raises NotFound, InvalidInput (a bad flag)."""
    summary = await find(ctx.store, message_id)
    await mail.add_flags(ctx, summary.mailbox_id, [summary.uid], flags)


async def flags_remove(ctx: MailContext, message_id: int, flags: Sequence[str]) -> None:
    """Removes flags/keywords from the message. Raises NotFound, InvalidInput."""
    summary = await find(ctx.store, message_id)
    await mail.remove_flags(ctx, summary.mailbox_id, [summary.uid], flags)


async def move(ctx: MailContext, message_id: int, mailbox: str) -> None:
    """Moves the message to `mailbox` (which must exist; the message keeps its id). Raises
    NotFound (message or mailbox), InvalidInput (already there), LimitExceeded."""
    summary = await find(ctx.store, message_id)
    try:
        target = await ctx.store.mailbox_async(mailbox)
    except MailboxNotFound:
        raise NotFound(f"no mailbox {mailbox!r}") from None
    if target.id == summary.mailbox_id:
        raise InvalidInput(f"message {message_id} is already in {target.name}", field="mailbox")
    await mail.move_messages(ctx, summary.mailbox_id, [summary.uid], target.name)


async def delete(ctx: MailContext, message_id: int) -> None:
    """Deletes the message for good. Raises NotFound."""
    summary = await find(ctx.store, message_id)
    await mail.delete_messages(ctx, summary.mailbox_id, [summary.uid])
