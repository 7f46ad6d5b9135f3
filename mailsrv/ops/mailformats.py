"""The two classic mail file formats, both ways: mbox (the "mboxrd" variant) and Maildir.

mbox: each message starts with a `From ` separator line (sender and asctime date; we write
`MAILER-DAEMON` and the internal date in UTC) and ends with an empty line. Body lines that
match `>*From ` get one more `>` on writing and lose one on reading (mboxrd), so no body line
is mistaken for a separator. Flags travel in the header fields mutt, Dovecot and most mbox
tools use: `Status:` (R read, O old), `X-Status:` (A answered, F flagged, T draft, D deleted)
and `X-Keywords:` (space separated). They are mbox metadata: written at the top of the header
on export and removed again on import, so a message survives a round trip byte for byte.
Files are written with LF line ends (as mbox tools expect); imported messages get CRLF
(RFC 5322 §2.3), which our stored messages have.

Maildir: one file per message in `cur/` (or `new/`); flags in the file name after `:2,`
(D draft, F flagged, P passed, R replied, S seen, T trashed) plus Dovecot's keyword letters
`a`..`z`, whose names are listed in the mailbox's `dovecot-keywords` file ("0 name" lines).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Sequence

# --- flags --------------------------------------------------------------------------------

_X_STATUS = (("\\Answered", "A"), ("\\Flagged", "F"), ("\\Draft", "T"), ("\\Deleted", "D"))
_MAILDIR = (("\\Draft", "D"), ("\\Flagged", "F"), ("\\Answered", "R"), ("\\Seen", "S"), ("\\Deleted", "T"))
_MAILDIR_BY_LETTER = {letter: flag for flag, letter in _MAILDIR} | {"P": "$Forwarded"}
MAX_MAILDIR_KEYWORDS = 26  # Dovecot's letters a..z
_MAX_KEYWORDS = 100


def _keywords(flags: Iterable[str]) -> list[str]:
    return sorted(f for f in flags if not f.startswith("\\"))


# --- mbox -----------------------------------------------------------------------------------

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_FROM_QUOTED = re.compile(rb"^>*From ", re.MULTILINE)
_UNQUOTE = re.compile(rb"^>(>*From )", re.MULTILINE)
_METADATA_FIELDS = (b"status", b"x-status", b"x-keywords")


def from_line(internal_date: datetime.datetime) -> bytes:
    """The separator line, asctime in UTC (e.g. `From MAILER-DAEMON Mon Dec  7 00:24:45 2026`)."""
    utc = internal_date.astimezone(datetime.UTC)
    # Day and month names spelled here: strftime's follow the process locale.
    stamp = f"{_DAYS[utc.weekday()]} {_MONTHS[utc.month - 1]} {utc.day:2d} {utc:%H:%M:%S} {utc.year}"
    return b"From MAILER-DAEMON " + stamp.encode() + b"\n"


def parse_from_line(line: bytes) -> datetime.datetime | None:
    """The date of a separator line (its last 24 characters in asctime form, read as UTC), or
    None when it has none we can read."""
    words = line.decode("ascii", "replace").split()[-5:]
    if len(words) != 5 or words[1] not in _MONTHS:
        return None
    try:
        hour, minute, second = (int(x) for x in words[3].split(":"))
        return datetime.datetime(
            int(words[4]), _MONTHS.index(words[1]) + 1, int(words[2]), hour, minute, second, tzinfo=datetime.UTC
        )
    except ValueError:
        return None


def mbox_status_fields(flags: Iterable[str]) -> bytes:
    """The metadata fields for `flags` (Status always; X-Status and X-Keywords when needed)."""
    flag_set = set(flags)
    out = b"Status: " + (b"RO" if "\\Seen" in flag_set else b"O") + b"\n"
    x_status = "".join(letter for flag, letter in _X_STATUS if flag in flag_set)
    if x_status:
        out += b"X-Status: " + x_status.encode() + b"\n"
    keywords = _keywords(flag_set)
    if keywords:
        out += b"X-Keywords: " + " ".join(keywords).encode() + b"\n"
    return out


def mbox_entry(data: bytes, flags: Iterable[str], internal_date: datetime.datetime) -> bytes:
    """One message as it appears in an mbox file: separator, metadata fields, the message
    with LF line ends and `>*From ` lines quoted, and the closing empty line."""
    body = data.replace(b"\r\n", b"\n")
    body = _FROM_QUOTED.sub(lambda m: b">" + m.group(0), body)
    if not body.endswith(b"\n"):
        body += b"\n"
    return from_line(internal_date) + mbox_status_fields(flags) + body + b"\n"


def _header_end(data: bytes) -> int:
    """Offset just after the header's last line (before the empty line), or len(data)."""
    if data.startswith(b"\n"):
        return 0
    i = data.find(b"\n\n")
    return len(data) if i < 0 else i + 1


def _flags_from_fields(fields: Sequence[tuple[bytes, bytes]]) -> list[str]:
    flags: set[str] = set()
    for name, value in fields:
        text = value.decode("utf-8", "replace").strip()
        if name == b"status" and "R" in text:
            flags.add("\\Seen")
        elif name == b"x-status":
            flags.update(flag for flag, letter in _X_STATUS if letter in text)
        elif name == b"x-keywords":
            flags.update(k for k in text.replace(",", " ").split() if k)
        elif name == b"x-mozilla-status":
            # Thunderbird's hex flags: 0x1 read, 0x2 replied, 0x4 marked (flagged).
            try:
                bits = int(text, 16)
            except ValueError:
                continue
            flags.update(flag for bit, flag in ((1, "\\Seen"), (2, "\\Answered"), (4, "\\Flagged")) if bits & bit)
    return sorted(flags)[:_MAX_KEYWORDS]


def split_mbox_metadata(message: bytes) -> tuple[bytes, list[str]]:
    """An mbox message (LF line ends, unquoted) without its Status/X-Status/X-Keywords fields,
    and the flags they (and Thunderbird's X-Mozilla-Status) name."""
    end = _header_end(message)
    kept: list[bytes] = []
    fields: list[tuple[bytes, bytes]] = []
    dropping = False
    for line in message[:end].splitlines(keepends=True):
        if line[:1] in (b" ", b"\t"):  # a continuation belongs to the field before it
            if dropping:
                fields[-1] = (fields[-1][0], fields[-1][1] + line)
            else:
                kept.append(line)
            continue
        name, sep, value = line.partition(b":")
        lname = name.strip().lower()
        if sep and lname in (*_METADATA_FIELDS, b"x-mozilla-status"):
            fields.append((lname, value))
            dropping = lname in _METADATA_FIELDS
            if not dropping:
                kept.append(line)
            continue
        dropping = False
        kept.append(line)
    return b"".join(kept) + message[end:], _flags_from_fields(fields)


def unquote_mbox_line(line: bytes) -> bytes:
    """mboxrd: `>From ` -> `From `, `>>From ` -> `>From `."""
    return _UNQUOTE.sub(rb"\1", line) if line.startswith(b">") else line


def to_crlf(data: bytes) -> bytes:
    """Every line end as CRLF (RFC 5322 §2.3); lone CRs are left alone."""
    return re.sub(rb"\r?\n", b"\r\n", data)


# --- Maildir ---------------------------------------------------------------------------------


def keyword_letters(keywords: Iterable[str]) -> dict[str, str]:
    """Dovecot keyword letters for a mailbox's keywords (the first 26 in sorted order; the
    rest cannot be expressed in a Maildir file name and are left out)."""
    return {kw: chr(ord("a") + i) for i, kw in enumerate(sorted(set(keywords))[:MAX_MAILDIR_KEYWORDS])}


def dovecot_keywords_file(letters: dict[str, str]) -> bytes:
    return b"".join(f"{ord(letter) - ord('a')} {kw}\n".encode() for kw, letter in letters.items())


def parse_dovecot_keywords(data: bytes) -> dict[str, str]:
    """letter -> keyword from a `dovecot-keywords` file; malformed lines are skipped."""
    out: dict[str, str] = {}
    for line in data.decode("utf-8", "replace").splitlines()[:MAX_MAILDIR_KEYWORDS]:
        index, _, name = line.strip().partition(" ")
        if index.isdigit() and int(index) < MAX_MAILDIR_KEYWORDS and name.strip():
            out[chr(ord("a") + int(index))] = name.strip()
    return out


def maildir_name(
    message_id: int, internal_date: datetime.datetime, flags: Iterable[str], letters: dict[str, str]
) -> str:
    """`<epoch>.M<id>.mailsrv:2,<letters>`: the epoch keeps the internal date, letters sorted
    as the Maildir convention asks (system letters, then keyword letters)."""
    flag_set = set(flags)
    system = "".join(sorted(letter for flag, letter in _MAILDIR if flag in flag_set))
    keywords = "".join(sorted(letters[k] for k in flag_set if k in letters))
    return f"{int(internal_date.timestamp())}.M{message_id}.mailsrv:2,{system}{keywords}"


def parse_maildir_name(name: str, letters: dict[str, str]) -> tuple[list[str], datetime.datetime | None]:
    """Flags (from the info after `:2,` or `;2,`) and the delivery time a leading epoch
    number gives (None when there is none)."""
    flags: set[str] = set()
    for sep in (":2,", ";2,", "!2,"):
        base, found, info = name.rpartition(sep)
        if found:
            for letter in info:
                flag = _MAILDIR_BY_LETTER.get(letter) or letters.get(letter)
                if flag:
                    flags.add(flag)
            name = base
            break
    when = None
    head = name.split(".", 1)[0]
    if head.isdigit() and 0 < int(head) < 2**33:
        when = datetime.datetime.fromtimestamp(int(head), datetime.UTC)
    return sorted(flags), when
