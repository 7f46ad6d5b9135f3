"""What a list view shows of a message, computed once at delivery from its header and part tree.

`summarize(raw, tree)` returns the immutable header-derived `Summary` (see `interfaces`) plus the
sort keys the index keeps in columns. Nothing here touches the database; `thread.py` turns the
Message-ID/In-Reply-To/References fields into a thread id.

Sort keys follow RFC 5256 §2.1/§3 where IMAP SORT needs them: the sent date is the Date header
in UTC, or the internal date when it is missing or unparsable; the subject key is the "base
subject" (reply/forward prefixes and trailers removed, casefolded), from
`mailsrv.message.basesubject` (re-exported here as `base_subject`).
"""

from __future__ import annotations

import datetime
import email.utils
import re
from collections.abc import Iterator

from mailsrv.message.basesubject import base_subject as base_subject  # re-exported
from mailsrv.message.htmltext import html_text
from mailsrv.message.parse import MAX_HEADER_PARSE, Buffer, body_text, decode_text
from mailsrv.message.part import EnvelopeAddress, Part
from mailsrv.store.interfaces import Summary, SummaryAddress

PREVIEW_CHARS = 200
# Bytes of a text body read for the preview: enough for 200 visible characters after
# quoted-printable or base64 decoding and HTML tags, bounded for hostile messages.
_PREVIEW_BYTES = 16 * 1024
MAX_REFERENCES = 50  # newest ones kept; enough to thread, bounded per message
MAX_ADDRESSES = 50  # per field in a summary
_MAX_ID = 250  # longest Message-ID kept (RFC 5322 lines are 998 octets)
_MAX_SUBJECT = 1000

# The References field with its continuation lines: one field of a header block, found without
# a second header parse (the part tree's envelope has every other field).
_REFERENCES = re.compile(rb"^references[ \t]*:(.*(?:\r?\n[ \t].*)*)", re.I | re.M)
_MSG_ID = re.compile(r"<([^<>\s]{1,250})>")


def message_ids(values: list[str]) -> list[str]:
    """The msg-ids in header values, without angle brackets, in order."""
    return [m.group(1) for value in values for m in _MSG_ID.finditer(value)]


def _address(a: EnvelopeAddress) -> SummaryAddress | None:
    if a.mailbox is None or a.host is None:  # group markers
        return None
    addr = f"{a.mailbox}@{a.host}" if a.host else a.mailbox
    return SummaryAddress(name=decode_text(a.name) or "", addr=addr)


def _addresses(addrs: tuple[EnvelopeAddress, ...]) -> tuple[SummaryAddress, ...]:
    out = [x for x in (_address(a) for a in addrs) if x is not None]
    return tuple(out[:MAX_ADDRESSES])


# A Date field in the form RFC 5322 §3.3 recommends ("Mon, 7 Dec 2026 06:00:00 +0100", also
# with more spaces or a trailing comment such as "(UTC)", as Postfix writes it), read without
# the email package (most messages; the result is the same, checked against it). The year has
# four digits (the email package maps two-digit years, and "0099" to 1999), and "-0000" (no
# zone information, read as local time there) is left to it.
_MONTHS = {m: i for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}
_DATE = re.compile(
    r"(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun),[ \t]*)?(\d{1,2})[ \t]+(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
    r"[ \t]+([1-9]\d{3})[ \t]+(\d\d):(\d\d)(?::(\d\d))?[ \t]+([+-])(\d\d)(\d\d)(?:[ \t]+\([^()\\]*\))?"
)


def _usual_date(value: str) -> int | None:
    m = _DATE.fullmatch(value)
    if m is None:
        return None
    day, month, year, hour, minute, second, sign, zone_h, zone_m = m.groups()
    if sign == "-" and zone_h == zone_m == "00":
        return None
    offset = (int(zone_h) * 3600 + int(zone_m) * 60) * (-1 if sign == "-" else 1)
    try:
        zone = datetime.timezone(datetime.timedelta(seconds=offset))
        when = datetime.datetime(int(year), _MONTHS[month], int(day), int(hour), int(minute), int(second or 0), 0, zone)
    except ValueError:
        return None  # out of range: the email package decides
    return int(when.timestamp())


def sent_date(date_header: str | None, internal_date: int) -> int:
    """The Date header in seconds since the epoch, or `internal_date` (RFC 5256 §2.2)."""
    if date_header:
        usual = _usual_date(date_header)
        if usual is not None:
            return usual
        try:
            return int(email.utils.parsedate_to_datetime(date_header).timestamp())
        except (TypeError, ValueError, IndexError, OverflowError):
            pass
    return internal_date


def has_attachment(tree: Part) -> bool:
    """True when some part is meant to be saved rather than read: a Content-Disposition of
    attachment, a file name, or a non-text leaf that is not inline (e.g. a PDF)."""
    stack = [tree]
    while stack:
        part = stack.pop()
        if part.is_multipart:
            stack.extend(part.children)
            continue
        if part is not tree and part.is_message:
            return True  # a forwarded message
        if part.is_message:
            stack.extend(part.children)
            continue
        if part.disposition == "attachment":
            return True
        if part is tree:
            continue
        named = "filename" in part.disposition_params or "name" in part.params
        if part.disposition != "inline" and (named or part.media_type not in ("text", "multipart")):
            return True
    return False


def _first_text(tree: Part) -> Part | None:
    """The part a reader sees first: text/plain before text/html, attachments skipped."""
    html: Part | None = None
    stack = [tree]
    while stack:
        part = stack.pop(0)
        if part.children and (part.is_multipart or part is tree):
            stack[:0] = part.children
            continue
        if part.media_type != "text" or part.disposition == "attachment":
            continue
        if part.media_subtype == "plain":
            return part
        if part.media_subtype == "html" and html is None:
            html = part
    return html


def preview(raw: Buffer, tree: Part) -> str:
    """The first visible characters of the message text, whitespace collapsed."""
    part = _first_text(tree)
    if part is None:
        return ""
    end = min(part.body_end, part.body_start + _PREVIEW_BYTES)
    if part.media_subtype == "plain" and part.encoding in _IDENTITY and _line_safe(part):
        # The first whole lines of the first 2 KB usually fill the preview: then it is what
        # the whole 16 KB gives (the same lines, and the words stop before the cut).
        head = bytes(raw[part.body_start : min(end, part.body_start + _FIRST_BYTES)])
        cut = head.rfind(b"\n") + 1
        if cut and part.body_start + len(head) < end:
            words, full = _preview_words(body_text(part, head[:cut]))
            if full:
                return words
    text = body_text(part, bytes(raw[part.body_start : end]))
    if part.media_subtype == "html":
        text = html_text(text)
    return preview_text(text)


_FIRST_BYTES = 2048
_IDENTITY = ("7bit", "8bit", "binary")
# Charsets in which a b"\n" byte is always a line feed ending what comes before it (no
# multi-byte or shifted encodings where it could be half of a character).
_LINE_SAFE = re.compile(r"us-ascii|ascii|utf-8|utf8|iso-8859-\d{1,2}|windows-125\d|cp125\d", re.I)


def _line_safe(part: Part) -> bool:
    return _LINE_SAFE.fullmatch(part.params.get("charset", "utf-8")) is not None


def _lines(text: str, chunk: int = 2048) -> Iterator[str]:
    """`text.splitlines()`, split a chunk at a time: a preview needs the first few lines,
    and splitting all of a 16 KB body cost more than the rest of the summary."""
    start = 0
    while start < len(text):
        lines = text[start : start + chunk].splitlines(keepends=True)
        if start + chunk < len(text):
            if len(lines) == 1:
                chunk *= 2  # one line longer than the chunk: look further
                continue
            lines.pop()  # it may go on in the next chunk
        for line in lines:
            start += len(line)
            yield line


def preview_text(text: str) -> str:
    """The first PREVIEW_CHARS of `text` without quoted lines, whitespace collapsed.
    Quoted lines of a reply say nothing new; a list shows what the sender wrote. Words are
    taken only until the preview is full (a long body cost a pass over every line)."""
    return _preview_words(text)[0]


def _preview_words(text: str) -> tuple[str, bool]:
    """preview_text(text), and whether it filled up before the end of `text`."""
    words: list[str] = []
    length = 0
    for line in _lines(text):
        if line.lstrip().startswith(">"):
            continue
        for word in line.split():
            words.append(word)
            length += len(word) + 1
            if length > PREVIEW_CHARS:
                return " ".join(words)[:PREVIEW_CHARS], True
    return " ".join(words)[:PREVIEW_CHARS], False


def summarize(raw: Buffer, tree: Part, internal_date: int) -> Summary:
    """The summary of a stored message (`raw` as stored, `tree` its part tree)."""
    env = tree.envelope
    header = raw[tree.header_start : min(tree.body_start, tree.header_start + MAX_HEADER_PARSE)]
    subject = decode_text(env.subject if env else None) or ""
    own = message_ids([env.message_id]) if env and env.message_id else []
    in_reply_to = message_ids([env.in_reply_to]) if env and env.in_reply_to else []
    # The regex tries every line start; most headers have no References field at all.
    fields = (
        [m.group(1).decode("utf-8", "replace") for m in _REFERENCES.finditer(header)]
        if b"references" in bytes(header).lower()
        else []
    )
    references = message_ids(fields)[-MAX_REFERENCES:]
    return Summary(
        from_=_addresses(env.from_) if env else (),
        to=_addresses(env.to) if env else (),
        cc=_addresses(env.cc) if env else (),
        subject=subject[:_MAX_SUBJECT],
        date=sent_date(env.date if env else None, internal_date),
        has_attachment=has_attachment(tree),
        preview=preview(raw, tree),
        message_id=own[0][:_MAX_ID] if own else "",
        in_reply_to=tuple(in_reply_to[:MAX_REFERENCES]),
        references=tuple(references),
    )


def sort_from(summary: Summary) -> str:
    """The key of a list sorted by sender: display name, else address (RFC 5957 DISPLAY)."""
    if not summary.from_:
        return ""
    first = summary.from_[0]
    return (first.name or first.addr).casefold()


def sort_subject(summary: Summary) -> str:
    return base_subject(summary.subject)[0].casefold()
