"""The webmail's view of one stored message: header fields decoded, text parts as blocks with
quote levels and links, the HTML sanitised (`mailsrv.message.sanitize`), attachments with
size and type, and the `Authentication-Results:` verdict (`ops.webmail_authresults`).

Parts are named by their path in the stored part tree: child indexes joined by "." ("" is
the message itself; "1.0" the first child of the second child). What is shown:

- multipart/alternative: its text/plain child as the text, its text/html child (or a
  multipart/related holding one) as the HTML; other alternatives are attachments.
- multipart/related: the first child is the body, the others resources (`cid:` images).
- other multiparts: every child in order.
- a text/plain or text/html leaf that is not an attachment (no `attachment` disposition, no
  file name) is body; everything else, and any attached message/rfc822, is an attachment.

Everything is built from the part tree stored at delivery and one read of the message file,
in a pool thread (`message_view` never decodes on the reactor). Sizes are bounded: at most
`MAX_TEXT` characters of text per part, `MAX_PARTS_SHOWN` body parts, `MAX_ATTACHMENTS`.
Malformed MIME degrades (the parser never fails; undecodable text is replaced characters).
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import msgspec

from mailsrv.message.htmltext import html_text
from mailsrv.message.parse import body_text, decode_body, decode_text, header_table, parse_headers
from mailsrv.message.part import Part
from mailsrv.message.sanitize import sanitize_html
from mailsrv.ops.webmail_authresults import AuthVerdict, verdict

MAX_TEXT = 2 * 1024 * 1024  # characters of one text part shown
MAX_PARTS_SHOWN = 20
MAX_ATTACHMENTS = 500
MAX_LINKS = 2000  # per text block
MAX_IDS = 50  # References kept


class AddressView(msgspec.Struct, frozen=True):
    name: str
    address: str


class Link(msgspec.Struct, frozen=True, array_like=True):
    """Characters [start, end) of a block's text are a link to `href`."""

    start: int
    end: int
    href: str


class TextBlock(msgspec.Struct, frozen=True):
    """Consecutive lines at one quote level (0: not quoted), without their ">" markers."""

    quote: int
    text: str
    links: list[Link] = []


class AttachmentView(msgspec.Struct, frozen=True):
    path: str
    filename: str
    content_type: str
    size: int  # decoded size, estimated from the encoded one for base64
    inline: bool = False
    content_id: str = ""


class MessageView(msgspec.Struct, kw_only=True):
    id: int
    mailbox_id: int
    uid: int
    flags: list[str]
    size: int
    received: int  # internal date, seconds since the epoch
    date: int  # sent date (Date:, else received)
    subject: str
    from_: list[AddressView] = msgspec.field(name="from")
    sender: list[AddressView]
    reply_to: list[AddressView]
    to: list[AddressView]
    cc: list[AddressView]
    bcc: list[AddressView]
    message_id: str  # with <>
    in_reply_to: str
    references: list[str]
    list_id: str  # the identifier inside <>, lower-case; "" when none
    text: list[TextBlock]  # the text parts, or the HTML's text when there is none
    text_truncated: bool
    has_html: bool
    html_blocked: int  # remote resources the sanitised HTML leaves out (0 when allowed)
    remote_allowed: bool  # the reader allowed remote resources for this From: address
    attachments: list[AttachmentView]
    auth: AuthVerdict


# --- the part tree ---------------------------------------------------------------------------


def part_path(path: tuple[int, ...]) -> str:
    return ".".join(str(i) for i in path)


def find_part(tree: Part, path: str) -> Part | None:
    """The part at `path` ("" the root), None when there is none."""
    part = tree
    if not path:
        return part
    for index in path.split("."):
        if not index.isdigit() or int(index) >= len(part.children):
            return None
        part = part.children[int(index)]
    return part


def _filename(part: Part) -> str:
    name = part.disposition_params.get("filename") or part.params.get("name") or ""
    return (decode_text(name) or "").replace("/", "_").replace("\\", "_")[:255]


def _is_attachment(part: Part) -> bool:
    return part.disposition == "attachment" or bool(_filename(part))


@dataclass
class Layout:
    """Which parts are body text, body HTML and attachments, with paths."""

    texts: list[tuple[str, Part]] = field(default_factory=list)
    htmls: list[tuple[str, Part]] = field(default_factory=list)
    attachments: list[tuple[str, Part, bool]] = field(default_factory=list)  # (path, part, inline)

    def by_content_id(self) -> dict[str, str]:
        return {p.content_id.strip("<> "): path for path, p, _ in self.attachments if p.content_id}


def layout(tree: Part) -> Layout:
    out = Layout()
    _visit(tree, (), out, top=True)
    return out


def _visit(part: Part, path: tuple[int, ...], out: Layout, top: bool = False) -> None:
    if len(out.attachments) >= MAX_ATTACHMENTS:
        return
    if part.is_multipart:
        children = list(enumerate(part.children))
        if part.media_subtype == "alternative":
            _visit_alternative(children, path, out)
        elif part.media_subtype == "related" and children:
            _visit(children[0][1], (*path, children[0][0]), out)
            for i, child in children[1:]:
                out.attachments.append((part_path((*path, i)), child, True))
        else:
            for i, child in children:
                _visit(child, (*path, i), out)
        return
    if part.is_message and top and part.children:
        _visit(part.children[0], (*path, 0), out)
        return
    if part.media_type == "text" and part.media_subtype in ("plain", "html") and not _is_attachment(part):
        target = out.texts if part.media_subtype == "plain" else out.htmls
        if len(target) < MAX_PARTS_SHOWN:
            target.append((part_path(path), part))
            return
    out.attachments.append((part_path(path), part, part.disposition == "inline" and not _filename(part)))


def _contains_html(part: Part) -> bool:
    if part.media_type == "text" and part.media_subtype == "html":
        return True
    return (
        part.is_multipart
        and part.media_subtype == "related"
        and bool(part.children)
        and _contains_html(part.children[0])
    )


def _visit_alternative(children: list[tuple[int, Part]], path: tuple[int, ...], out: Layout) -> None:
    plain = [(i, c) for i, c in children if c.media_type == "text" and c.media_subtype == "plain"]
    rich = [(i, c) for i, c in children if _contains_html(c)]
    nested = [(i, c) for i, c in children if c.is_multipart and (i, c) not in rich]
    if plain:
        _visit(plain[-1][1], (*path, plain[-1][0]), out)
    if rich:
        _visit(rich[-1][1], (*path, rich[-1][0]), out)
    if not plain and not rich:
        for i, c in nested[-1:]:
            _visit(c, (*path, i), out)
    chosen = {i for i, _ in plain[-1:] + rich[-1:] + (nested[-1:] if not plain and not rich else [])}
    for i, c in children:
        if i not in chosen and c.media_type != "text":
            out.attachments.append((part_path((*path, i)), c, False))


def decoded_size(part: Part) -> int:
    octets = part.body_octets
    if part.encoding == "base64":
        return octets * 3 // 4 - octets * 3 // 4 // 39  # minus the line breaks, roughly
    return octets


def attachment_view(path: str, part: Part, inline: bool) -> AttachmentView:
    content_type = f"{part.media_type}/{part.media_subtype}"
    name = _filename(part)
    if not name and part.is_message:
        env = part.children[0].envelope if part.children else None
        subject = decode_text(env.subject) if env and env.subject else ""
        name = re.sub(r"[^\w .,()-]+", "_", subject or "message")[:100] + ".eml"
    return AttachmentView(
        path=path,
        filename=name,
        content_type=content_type,
        size=decoded_size(part),
        inline=inline,
        content_id=(part.content_id or "").strip("<> "),
    )


# --- text ------------------------------------------------------------------------------------

_LINK = re.compile(r"""(?:https?://|mailto:|www\.)[^\s<>"'`]+""", re.IGNORECASE)
_TRAILING = ".,;:!?'\")]}>"
_QUOTE = re.compile(r"^((?:[ \t]?>)+)[ \t]?")


def links_in(text: str) -> list[Link]:
    out = []
    for m in _LINK.finditer(text):
        url = m.group(0)
        while url and url[-1] in _TRAILING:
            if url[-1] == ")" and url.count("(") >= url.count(")"):
                break
            url = url[:-1]
        if len(url) <= 4:
            continue
        href = "https://" + url if url.lower().startswith("www.") else url
        out.append(Link(m.start(), m.start() + len(url), href))
        if len(out) >= MAX_LINKS:
            break
    return out


def text_blocks(text: str) -> list[TextBlock]:
    """Lines grouped by quote level ("> > x" is level 2), markers removed, links found."""
    blocks: list[TextBlock] = []
    level = -1
    lines: list[str] = []

    def flush() -> None:
        if lines:
            body = "\n".join(lines)
            blocks.append(TextBlock(level, body, links_in(body)))

    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        m = _QUOTE.match(line)
        depth = m.group(1).count(">") if m else 0
        if depth != level:
            flush()
            level, lines = depth, []
        lines.append(line[m.end() :] if m else line)
    flush()
    while blocks and not blocks[-1].text.strip():
        blocks.pop()
    return blocks


def _part_text(raw: bytes, part: Part) -> str:
    return body_text(part, raw[part.body_start : part.body_end])


# --- the view --------------------------------------------------------------------------------


def _addresses(values: list[str]) -> list[AddressView]:
    out = []
    for name, address in email.utils.getaddresses([decode_text(v) or "" for v in values])[:200]:
        if name or address:
            out.append(AddressView(name=name, address=address))
    return out


_MSGID = re.compile(r"<[^<>\s]{1,250}>")


@dataclass(frozen=True)
class MessageFacts:
    """What the view is built from (read from the store on the reactor thread)."""

    id: int
    mailbox_id: int
    uid: int
    flags: tuple[str, ...]
    size: int
    received: int
    date: int


def build_view(
    raw: bytes,
    tree: Part,
    facts: MessageFacts,
    authserv_id: str,
    remote_allowed: Callable[[str], bool],
) -> MessageView:
    """The view of a message (runs in a pool thread). `remote_allowed(from_address)` says
    whether the reader allowed remote resources for that sender."""
    headers = header_table(parse_headers(raw[tree.header_start : tree.body_start]))
    from_ = _addresses(headers.get("from", [])[:1])
    from_address = from_[0].address if from_ else ""
    allowed = bool(from_address) and remote_allowed(from_address)
    parts = layout(tree)
    texts = []
    truncated = False
    for _, part in parts.texts:
        text = _part_text(raw, part)
        if len(text) > MAX_TEXT:
            text, truncated = text[:MAX_TEXT], True
        texts.append(text)
    html_blocked = 0
    if parts.htmls:
        html = "\n".join(_part_text(raw, p) for _, p in parts.htmls)
        sanitized = sanitize_html(html, allow_remote=allowed)
        html_blocked = sanitized.blocked
        if not texts:
            text = html_text(sanitized.html)
            if len(text) > MAX_TEXT:
                text, truncated = text[:MAX_TEXT], True
            texts.append(text)
    blocks: list[TextBlock] = []
    for i, text in enumerate(texts):
        if i:
            blocks.append(TextBlock(0, "\n"))
        blocks.extend(text_blocks(text))
    list_id = ""
    for value in headers.get("list-id", [])[:1]:
        start, end = value.rfind("<"), value.rfind(">")
        list_id = (value[start + 1 : end] if 0 <= start < end else value).strip().lower()[:255]
    references = _MSGID.findall(" ".join(headers.get("references", [])[:1]))[-MAX_IDS:]
    in_reply_to = _MSGID.findall(" ".join(headers.get("in-reply-to", [])[:1]))
    message_id = _MSGID.findall(" ".join(headers.get("message-id", [])[:1]))
    return MessageView(
        id=facts.id,
        mailbox_id=facts.mailbox_id,
        uid=facts.uid,
        flags=list(facts.flags),
        size=facts.size,
        received=facts.received,
        date=facts.date,
        subject=decode_text((headers.get("subject") or [""])[0]) or "",
        from_=from_,
        sender=_addresses(headers.get("sender", [])[:1]),
        reply_to=_addresses(headers.get("reply-to", [])[:1]),
        to=_addresses(headers.get("to", [])),
        cc=_addresses(headers.get("cc", [])),
        bcc=_addresses(headers.get("bcc", [])),
        message_id=message_id[0] if message_id else "",
        in_reply_to=in_reply_to[-1] if in_reply_to else "",
        references=references,
        list_id=list_id,
        text=blocks,
        text_truncated=truncated,
        has_html=bool(parts.htmls),
        html_blocked=html_blocked,
        remote_allowed=allowed,
        attachments=[attachment_view(path, p, inline) for path, p, inline in parts.attachments],
        auth=verdict(headers.get("authentication-results", []), authserv_id, from_address.rpartition("@")[2]),
    )


def message_html(
    raw: bytes, tree: Part, allow_remote: bool, part_url: Callable[[str], str], placeholder: str = ""
) -> tuple[str, int]:
    """The sanitised HTML document body of the message and the number of remote resources
    it leaves out; `cid:` images point at `part_url(path)`. "" when it has no HTML part."""
    parts = layout(tree)
    if not parts.htmls:
        return "", 0
    by_cid = parts.by_content_id()

    def cid_url(cid: str) -> str | None:
        path = by_cid.get(cid)
        return part_url(path) if path is not None else None

    html = "\n".join(_part_text(raw, p) for _, p in parts.htmls)
    sanitized = sanitize_html(html, allow_remote=allow_remote, cid_url=cid_url, placeholder=placeholder)
    return sanitized.html, sanitized.blocked


def part_content(raw: bytes, tree: Part, path: str) -> tuple[bytes, str, str] | None:
    """(decoded bytes, content type, file name) of the part at `path`; a message/rfc822 part
    is given as it is (message/rfc822). None when there is no such leaf."""
    part = find_part(tree, path)
    if part is None or part.is_multipart:
        return None
    if part.is_message:
        return raw[part.body_start : part.body_end], "message/rfc822", attachment_view(path, part, False).filename
    data = decode_body(part, raw[part.body_start : part.body_end])
    if data is None:
        data = raw[part.body_start : part.body_end]
    content_type = f"{part.media_type}/{part.media_subtype}"
    charset = part.params.get("charset", "")
    if part.media_type == "text" and re.fullmatch(r"[A-Za-z0-9._:-]{1,40}", charset):
        content_type += f"; charset={charset}"
    return data, content_type, _filename(part) or f"part-{path or 'body'}"


def iter_leaves(tree: Part) -> Iterator[tuple[str, Part]]:
    stack: list[tuple[tuple[int, ...], Part]] = [((), tree)]
    while stack:
        path, part = stack.pop()
        if part.children:
            stack.extend(((*path, i), c) for i, c in reversed(list(enumerate(part.children))))
        else:
            yield part_path(path), part
