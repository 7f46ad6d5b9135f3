"""Parsing a raw message into the stored part tree (`mailsrv.message.part`).

Offsets must be exact, so the header/body split and the multipart boundaries are found by
scanning the raw bytes here; only header *values* are decoded with the stdlib `email`
package. The parser never raises: broken MIME (missing end boundary, no header, bad
parameters, 8-bit junk) degrades to the most useful tree it can build, as IMAP clients
expect (RFC 2046 §5.1.1 delimiters; RFC 9051 §7.5.2 BODYSTRUCTURE fields).
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import re
from collections.abc import Iterable, Sequence
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from mmap import mmap

from mailsrv.message.part import Envelope, EnvelopeAddress, Part

# Nesting and count limits keep hostile messages from costing unbounded time and space.
MAX_DEPTH = 40
MAX_PARTS = 5000

# What the parser reads: bytes, or a stored file mapped into memory.
Buffer = bytes | bytearray | mmap

# An obsolete source route (RFC 5322 §4.4 obs-route) before an angle-addr's address.
_OBS_ROUTE = re.compile(r"<\s*(@[^:<>\"]*):\s*([^<>\s]*)\s*>")
_header_parser = BytesHeaderParser(policy=compat32)


# The part of a header block read for its fields (offsets stay exact beyond it): a hostile
# message without an empty line must not be parsed as a 50 MB header.
MAX_HEADER_PARSE = 1 << 20


def parse_message(raw: Buffer, header_fields: Sequence[tuple[str, str]] | None = None) -> Part:
    """The part tree of `raw` (bytes, or an mmap of a stored file: parsing then reads
    header blocks and scans for boundaries without copying the message); never raises.
    `header_fields`: the fields of raw's header exactly as `headerfields.header_fields(raw)`
    gives them, from a caller that has them already (they are not parsed again)."""
    counter = [0]
    given = _table(header_fields) if header_fields is not None else None
    try:
        return _parse_part(raw, 0, len(raw), ("text", "plain"), 0, counter, with_envelope=True, fields=given)
    except Exception:  # pragma: no cover - a parser bug must not lose the delivery
        body_start = header_end(raw, 0, len(raw))
        return Part(
            media_type="text",
            media_subtype="plain",
            header_start=0,
            body_start=body_start,
            body_end=len(raw),
            body_lines=_count_lines(raw, body_start, len(raw)),
            envelope=Envelope(None, None, (), (), (), (), (), (), None, None),
        )


def parse_headers(raw: bytes) -> Message:
    """The header block of a message or part as a compat32 `Message` (values undecoded)."""
    try:
        return _header_parser.parsebytes(raw)
    except Exception:
        return Message()


def header_end(raw: Buffer, start: int, end: int) -> int:
    """Offset where the body starts: after the first empty line, or `end` without one."""
    if raw[start : start + 2] == b"\r\n" and start + 2 <= end:
        return start + 2
    if raw[start : start + 1] == b"\n" and start + 1 <= end:
        return start + 1
    found = blank_line(raw, start, end)
    return end if found is None else found[1]


def blank_line(raw: Buffer, start: int, end: int) -> tuple[int, int] | None:
    """(start, end) of the first match of `\\r?\\n\\r?\\n` in raw[start:end], or None.

    Two plain searches instead of the regex, which tries every offset of a header block: the
    match's first newline is the first one followed by "\\n" or "\\r\\n". Searched in a
    growing window, so a long message without a CRLF empty line is not scanned to its end."""
    limit = start + 4096
    while True:
        stop = min(end, limit)
        crlf = raw.find(b"\n\r\n", start, stop)
        # A match found inside the window is the first overall: a match straddling the window's
        # end starts after every match inside it.
        lf = raw.find(b"\n\n", start, stop if crlf < 0 else crlf + 1)
        if lf >= 0 or crlf >= 0:
            newline, length = (lf, 2) if lf >= 0 else (crlf, 3)
            first = newline - 1 if newline > start and raw[newline - 1 : newline] == b"\r" else newline
            return first, newline + length
        if stop >= end:
            return None
        limit = start + 2 * (limit - start)


def decode_text(value: str | None) -> str | None:
    """Decodes RFC 2047 encoded-words in a header value; tolerant of junk."""
    if value is None:
        return None
    if "=?" not in value:
        text = value  # no encoded-word: what the email package gives back (checked on random text)
    else:
        text = _decode_words(value)
    return " ".join(text.replace("\r", "").split("\n")).strip() if "\n" in text else text.strip()


def _decode_words(value: str) -> str:
    try:
        return str(make_header(decode_header(value)))
    except Exception:
        return value


# A header block's fields by lower-case name, values cleaned as `_clean_value` does: what
# the part tree's parser reads (`_fields`), in place of a compat32 `Message`.
FieldTable = dict[str, list[str]]


def _fields(header: bytes) -> FieldTable:
    """The fields of a header block, read by `headerfields.header_fields` (the same fields and
    values as the email package's parser gives, at a fraction of its CPU: every delivery
    parses its message's header here)."""
    from mailsrv.message.headerfields import header_fields  # it imports header_end from here

    return _table(header_fields(header))


def _table(fields: Iterable[tuple[str, str]]) -> FieldTable:
    table: FieldTable = {}
    for name, value in fields:
        table.setdefault(name.lower(), []).append(value)
    return table


def _raw_values(msg: Message | FieldTable, name: str) -> list[str]:
    """Every value of header `name` as stored, unfolded, 8-bit bytes read as UTF-8 (RFC 6532)
    with invalid sequences replaced. `raw_items` because compat32's `get` turns 8-bit values
    into `Header` objects whose text loses even valid UTF-8."""
    if isinstance(msg, dict):
        return msg.get(name, [])
    return [_clean_value(value) for key, value in msg.raw_items() if key.lower() == name]


def _clean_value(value: object) -> str:
    text = str(value)
    try:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeError:
        pass
    return " ".join(line.strip() for line in text.replace("\r", "").split("\n")).strip()


def header_table(msg: Message) -> dict[str, list[str]]:
    """Every header's values by lower-case name, in order, cleaned as `header_values` does (one pass)."""
    table: dict[str, list[str]] = {}
    for key, value in msg.raw_items():
        table.setdefault(key.lower(), []).append(_clean_value(value))
    return table


def header_values(msg: Message, name: str) -> list[str]:
    """Every value of header `name` (any case), unfolded, UTF-8 kept (see `_raw_values`)."""
    return _raw_values(msg, name.lower())


def _raw_header(msg: Message | FieldTable, name: str) -> str | None:
    values = _raw_values(msg, name)
    return values[0] if values else None


# A parameter in its plain form: name=token or name="text" without quotes, backslashes, angle
# brackets or ';' in the text, and no RFC 2231 "*" in the name. For a header whose parameters
# all look so, `_simple_params` gives what the email package gives (checked against it on
# random values), at a tenth of its CPU.
_SIMPLE_PARAM = re.compile(
    r"[ \t]*([!#$%&'+\-.^_`{|}~0-9A-Za-z]+)[ \t]*=[ \t]*"
    r"(?:([!#$%&'*+\-.^_`{|}~0-9A-Za-z]+)|\"([^\"\\<>;]*)\")[ \t]*"
)


def _simple_params(value: str) -> dict[str, str] | None:
    if "\\" in value:
        return None
    main, *params = value.split(";")
    if '"' in main:
        return None
    out: dict[str, str] = {}
    for param in params:
        if not param.strip(" \t"):
            continue
        m = _SIMPLE_PARAM.fullmatch(param)
        if m is None:
            return None
        name, token, text = m.groups()
        out[name.lower()] = decode_text(token if token is not None else text) or ""
    return out


def _params(msg: Message | FieldTable, header: str) -> dict[str, str]:
    value = _raw_header(msg, header)
    if value is None:
        return {}
    simple = _simple_params(value)
    if simple is not None:
        return simple
    return _params_by_email_package(header, value)


def _params_by_email_package(header: str, value: str) -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        # A fresh message holding the decoded text, so parameter parsing sees no surrogates.
        holder = Message()
        holder[header] = value
        params = holder.get_params(header=header, failobj=[])
    except Exception:
        return out
    for i, item in enumerate(params or []):
        if i == 0:
            continue  # the value itself (e.g. "text/plain")
        key, pvalue = item
        try:
            text = email.utils.collapse_rfc2231_value(pvalue)
        except Exception:
            text = str(pvalue)
        key = key.strip().lower()
        if key:
            out[key] = decode_text(text) or ""
    return out


def _content_type(msg: Message | FieldTable, default: tuple[str, str]) -> tuple[str, str]:
    value = _raw_header(msg, "content-type")
    if not value:
        return default
    main = value.split(";", 1)[0].strip().lower()
    if main.count("/") != 1:
        return ("text", "plain")
    t, s = (x.strip() for x in main.split("/"))
    if not _TOKEN.fullmatch(t) or not _TOKEN.fullmatch(s):
        # Not a type (e.g. "text/plain charset=us-ascii", the ";" forgotten): RFC 2045 §5.2
        # says to treat the part as plain text.
        return ("text", "plain")
    return (t, s)


# RFC 2045 §5.1 token: no space, control or tspecial.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`{|}~0-9a-z]+")


def _count_lines(raw: Buffer, start: int, end: int) -> int:
    """Line breaks in the body. A last line without one of its own is not counted: in a
    body part, the CRLF before the next delimiter belongs to the delimiter (RFC 2046
    §5.1.1), and other servers (Dovecot) count the same way."""
    if end <= start:
        return 0
    if isinstance(raw, bytes):
        return raw.count(b"\n", start, end)
    # An mmap has no count(): 1 MiB slices keep the copies small.
    step = 1 << 20
    return sum(raw[i : min(i + step, end)].count(b"\n") for i in range(start, end, step))


def _parse_part(
    raw: Buffer,
    start: int,
    end: int,
    default_type: tuple[str, str],
    depth: int,
    counter: list[int],
    with_envelope: bool,
    fields: FieldTable | None = None,
) -> Part:
    counter[0] += 1
    body_start = header_end(raw, start, end)
    msg = fields if fields is not None else _fields(bytes(raw[start : min(body_start, start + MAX_HEADER_PARSE)]))
    media_type, media_subtype = _content_type(msg, default_type)
    encoding = (_raw_header(msg, "content-transfer-encoding") or "7bit").split()[0:1]
    disposition_value = _raw_header(msg, "content-disposition")
    language = _raw_header(msg, "content-language")
    md5 = _raw_header(msg, "content-md5")
    part = Part(
        media_type=media_type,
        media_subtype=media_subtype,
        params=_params(msg, "content-type"),
        content_id=_raw_header(msg, "content-id"),
        description=decode_text(_raw_header(msg, "content-description")),
        encoding=(encoding[0] if encoding else "7bit").lower(),
        md5=md5,
        disposition=disposition_value.split(";", 1)[0].strip().lower() or None if disposition_value else None,
        disposition_params=_params(msg, "content-disposition") if disposition_value else {},
        language=[x.strip() for x in language.split(",") if x.strip()] if language else None,
        location=_raw_header(msg, "content-location"),
        header_start=start,
        body_start=body_start,
        body_end=end,
    )
    if with_envelope:
        part.envelope = envelope_from_headers(msg)
    too_deep = depth >= MAX_DEPTH or counter[0] >= MAX_PARTS
    if media_type == "multipart" and not too_deep:
        boundary = part.params.get("boundary")
        if boundary:
            child_default = ("message", "rfc822") if media_subtype == "digest" else ("text", "plain")
            for cs, ce in _split_multipart(raw, body_start, end, boundary.encode("utf-8", "replace")):
                if counter[0] >= MAX_PARTS:
                    break
                part.children.append(_parse_part(raw, cs, ce, child_default, depth + 1, counter, False))
        if not part.children:
            # RFC 2046 requires at least one body part; an empty text part keeps clients sane.
            part.children.append(
                Part(media_type="text", media_subtype="plain", header_start=end, body_start=end, body_end=end)
            )
    elif part.is_message and not too_deep and part.encoding in ("7bit", "8bit", "binary"):
        part.body_lines = _count_lines(raw, body_start, end)
        part.children.append(_parse_part(raw, body_start, end, ("text", "plain"), depth + 1, counter, True))
    elif media_type == "text":
        part.body_lines = _count_lines(raw, body_start, end)
    return part


def _split_multipart(raw: Buffer, start: int, end: int, boundary: bytes) -> list[tuple[int, int]]:
    """(start, end) of each body part between `--boundary` delimiter lines. The line break
    before a delimiter belongs to the delimiter (RFC 2046 §5.1.1)."""
    # A delimiter line is "--boundary" and optional white space. RFC 2046 §5.1.1 lets a
    # reader take any line that starts with it, but a nested part's boundary may extend
    # ours ("X" outside, "XAA" inside: real mail does this), so only the close delimiter
    # "--boundary--" is taken with anything after it ("--b--</HTML>" is seen in the wild;
    # Dovecot reads it so too).
    delimiter = re.compile(rb"(?:^|(?<=\n))--" + re.escape(boundary) + rb"(?:(--)[^\r\n]*|[ \t]*)(?:\r?\n|$)", re.M)
    parts: list[tuple[int, int]] = []
    current: int | None = None
    for m in delimiter.finditer(raw, start, end):
        line_start = m.start()
        if current is not None:
            part_end = line_start
            if part_end > current and raw[part_end - 1 : part_end] == b"\n":
                part_end -= 1
                if part_end > current and raw[part_end - 1 : part_end] == b"\r":
                    part_end -= 1
            parts.append((current, max(current, part_end)))
        if m.group(1):  # close delimiter
            current = None
            break
        current = m.end()
    if current is not None:
        # Missing close delimiter: the last part runs to the end.
        parts.append((current, end))
    return parts


def _split_groups(text: str) -> list[tuple[str | None, str]]:
    """Splits an address-list into (group name, members) and (None, addresses) runs in
    order (RFC 5322 §3.4 group syntax). Quotes, comments and angle brackets are skipped so
    that a colon inside them never starts a group; an unterminated group ends at the end."""
    runs: list[tuple[str | None, str]] = []
    items: list[str] = []  # completed comma-separated items of the current run
    buf: list[str] = []
    group: str | None = None
    quoted = escaped = angle = False
    depth = 0
    for ch in text:
        if escaped:
            escaped = False
        elif ch == "\\" and (quoted or depth):
            escaped = True
        elif quoted:
            quoted = ch != '"'
        elif depth:
            depth += {"(": 1, ")": -1}.get(ch, 0)
        elif ch == '"':
            quoted = True
        elif ch == "(":
            depth = 1
        elif ch in "<>":
            angle = ch == "<"
        elif not angle and ch == ",":
            items.append("".join(buf))
            buf = []
            continue
        elif not angle and ch == ":" and group is None:
            if items:
                runs.append((None, ",".join(items)))
            items = []
            group = "".join(buf).strip()
            buf = []
            continue
        elif not angle and ch == ";" and group is not None:
            items.append("".join(buf))
            runs.append((group, ",".join(items)))
            items, buf, group = [], [], None
            continue
        buf.append(ch)
    items.append("".join(buf))
    if group is not None or any(x.strip() for x in items):
        runs.append((group, ",".join(items)))
    return runs


def _mailboxes(text: str) -> list[EnvelopeAddress]:
    out: list[EnvelopeAddress] = []
    # Source routes would be split at their commas: taken out first, and given back to
    # their address as the ENVELOPE's adl (RFC 9051 §7.5.2: "@route1,@route2").
    routes: dict[str, list[str]] = {}

    def take_route(m: re.Match[str]) -> str:
        route = re.sub(r"\s+", "", m.group(1))
        routes.setdefault(m.group(2), []).append(route)
        return f"<{m.group(2)}>"

    text = _OBS_ROUTE.sub(take_route, text)
    try:
        pairs = email.utils.getaddresses([text])
    except Exception:
        return out
    for display, addr in pairs:
        if not addr:
            continue
        waiting = routes.get(addr)
        adl = waiting.pop(0) if waiting else None
        # Raw (RFC 2047 words kept): IMAP ENVELOPE carries header text undecoded and
        # clients decode it; searches decode before comparing.
        mailbox, host = addr.rsplit("@", 1) if "@" in addr else (addr, "")
        # A NIL host would mean a group marker (RFC 9051 §7.5.2), so a local-only address
        # gets an empty host instead.
        out.append(EnvelopeAddress(display or None, adl, mailbox, host))
    return out


# Address lists in the common simple forms ("a@b", "<a@b>", "Name Words <a@b>", separated by
# commas): atoms only, no quotes, comments, groups, routes or domain literals. For these the
# email package's getaddresses gives the address as written and the display name's words
# joined by one space; `_simple_mailboxes` gives the same at a fraction of its CPU (checked
# against it on random lists), and anything else goes to getaddresses.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_ADDR_SPEC = rf"{_ATOM}(?:\.{_ATOM})*@{_ATOM}(?:\.{_ATOM})*"
_SIMPLE_ITEM = re.compile(rf"[ \t]*(?:({_ADDR_SPEC})|({_ATOM}(?:[ \t]+{_ATOM})*)?[ \t]*<({_ADDR_SPEC})>)[ \t]*")
_NOT_SIMPLE = re.compile(r'["():;\\\[\]]')
_WHITESPACE = re.compile(r"[ \t]+")


def _simple_mailboxes(text: str) -> list[EnvelopeAddress] | None:
    """The addresses of a list in the simple forms above, None when it is not one."""
    if _NOT_SIMPLE.search(text):
        return None
    out: list[EnvelopeAddress] = []
    for item in text.split(","):
        m = _SIMPLE_ITEM.fullmatch(item)
        if m is None:
            return None
        bare, phrase, addr = m.groups()
        mailbox, host = (bare or addr).rsplit("@", 1)
        out.append(EnvelopeAddress(_WHITESPACE.sub(" ", phrase) if phrase else None, None, mailbox, host))
    return out


def _addresses(msg: Message | FieldTable, name: str) -> tuple[EnvelopeAddress, ...]:
    # The first field only, when a (broken) message has several: what other servers show,
    # and RFC 5322 §3.6 allows one of each.
    text = _raw_header(msg, name)
    if not text:
        return ()
    simple = _simple_mailboxes(text)
    if simple is not None:
        return tuple(simple)
    out: list[EnvelopeAddress] = []
    for group, members in _split_groups(text):
        if group is None:
            out.extend(_mailboxes(members))
        else:
            # RFC 9051 §7.5.2: group start (mailbox = group name, host NIL), its members, group end.
            out.append(EnvelopeAddress(None, None, group, None))
            out.extend(_mailboxes(members))
            out.append(EnvelopeAddress(None, None, None, None))
    return tuple(out)


def envelope_from_headers(msg: Message | FieldTable) -> Envelope:
    from_ = _addresses(msg, "from")
    sender = _addresses(msg, "sender") or from_
    reply_to = _addresses(msg, "reply-to") or from_
    return Envelope(
        date=_raw_header(msg, "date"),
        subject=_raw_header(msg, "subject"),
        from_=from_,
        sender=sender,
        reply_to=reply_to,
        to=_addresses(msg, "to"),
        cc=_addresses(msg, "cc"),
        bcc=_addresses(msg, "bcc"),
        in_reply_to=_raw_header(msg, "in-reply-to"),
        message_id=_raw_header(msg, "message-id"),
    )


def decode_body(part: Part, body: bytes) -> bytes | None:
    """The body with its Content-Transfer-Encoding removed; None for an unknown encoding
    (IMAP BINARY answers [UNKNOWN-CTE], RFC 3516 §4.3)."""
    enc = part.encoding
    if enc in ("7bit", "8bit", "binary"):
        return body
    if enc == "base64":
        cleaned = re.sub(rb"[^A-Za-z0-9+/]", b"", body.split(b"=", 1)[0])
        # Tolerate missing padding and a truncated last quantum (broken senders).
        if len(cleaned) % 4 == 1:
            cleaned = cleaned[:-1]
        cleaned += b"=" * (-len(cleaned) % 4)
        try:
            return base64.b64decode(cleaned)
        except (binascii.Error, ValueError):
            return b""
    if enc == "quoted-printable":
        return decode_quoted_printable(body)
    return None


_QP_LINE = re.compile(rb"([^\r\n]*)(\r\n|\n|\r|$)")
_QP_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")


def decode_quoted_printable(body: bytes) -> bytes:
    """RFC 2045 §6.7: whitespace at the end of an encoded line was added in transport and
    is deleted (rule 3); a line ending in "=" (after that deletion, so also "=" followed by
    whitespace) is a soft line break (rule 5). Python's quopri/binascii keep both. An "="
    not followed by two hex digits is kept as it is (§6.7 note 1, robustness). Lower-case
    hex digits are accepted (note 1 suggests it). Line ends are kept as they were."""
    out: list[bytes] = []
    for m in _QP_LINE.finditer(body):
        line, end = m.group(1).rstrip(b" \t"), m.group(2)
        if not line and not end:
            if m.end() >= len(body):
                break
            continue
        if line.endswith(b"="):
            line, end = line[:-1], b""
        out.append(_QP_ESCAPE.sub(lambda e: bytes([int(e.group(1), 16)]), line))
        out.append(end)
    return b"".join(out)


def body_text(part: Part, body: bytes) -> str:
    """The body decoded to text by encoding and charset (for search and display)."""
    data = decode_body(part, body)
    if data is None:
        data = body
    charset = part.params.get("charset", "utf-8")
    try:
        return data.decode(charset, "replace")
    except (LookupError, ValueError):  # unknown charset, or a name Python refuses (NUL in it)
        return data.decode("utf-8", "replace")
