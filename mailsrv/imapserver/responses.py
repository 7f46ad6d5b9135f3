"""Building server responses (RFC 9051 §7) as bytes.

Every function returns bytes ready to be joined with single spaces; literals embed their
``{n}`` CRLF header and content, so a response with literals is still one bytes value that
ends with CRLF. The session writes them (`Session.write_untagged`, `write_tagged`,
`write_continuation`); handlers of other modules build their data with these helpers and
never format IMAP strings by hand, so quoting is decided in one place.

Quoting rule: a string goes out quoted when it is printable ASCII (or UTF-8 where the
session allows UTF-8 in quoted strings, RFC 9051 §9 utf8-quoted) without CR, LF or NUL and
not too long; otherwise as a literal. ``"`` and ``\\`` are escaped in quoted strings.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from mailsrv.imapserver import mutf7

CRLF = b"\r\n"
NIL = b"NIL"

# Long strings go out as literals: easier for clients and no escaping cost.
_MAX_QUOTED = 1024


def _quotable(data: bytes, allow_8bit: bool) -> bool:
    if len(data) > _MAX_QUOTED:
        return False
    for b in data:
        if b < 0x20 or b == 0x7F:
            return False
        if b >= 0x80 and not allow_8bit:
            return False
    return True


def quoted(data: bytes | str) -> bytes:
    """A quoted string; the caller guarantees there is no CR, LF or NUL."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def literal(data: bytes, *, literal8: bool = False) -> bytes:
    """A literal, or a literal8 (RFC 3516 BINARY, RFC 9051 §4.3) when `literal8`."""
    return (b"~" if literal8 else b"") + b"{%d}\r\n" % len(data) + data


def string(data: bytes | str, *, utf8: bool = False) -> bytes:
    """A string: quoted when possible, else a literal. `utf8` allows 8-bit UTF-8 in the
    quoted form (IMAP4rev2 / UTF8=ACCEPT sessions)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if _quotable(raw, utf8):
        return quoted(raw)
    return literal(raw)


def nstring(data: bytes | str | None, *, utf8: bool = False) -> bytes:
    return NIL if data is None else string(data, utf8=utf8)


_ATOM_OK = frozenset(b"!#$&'+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[^_`abcdefghijklmnopqrstuvwxyz|}~")


def astring(data: bytes | str, *, utf8: bool = False) -> bytes:
    """An atom when every character is an atom character (and it is not NIL), else a string."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if raw and raw.upper() != NIL and all(b in _ATOM_OK for b in raw):
        return raw
    return string(raw, utf8=utf8)


def mailbox(name: str, *, utf8: bool) -> bytes:
    """A mailbox name for the peer: UTF-8 for IMAP4rev2/UTF8=ACCEPT sessions, modified UTF-7
    for IMAP4rev1 (RFC 3501 §5.1.3). Always quoted (clients cope best with that)."""
    if name == "INBOX":
        return b"INBOX"
    raw = name.encode("utf-8") if utf8 else mutf7.encode(name)
    return string(raw, utf8=utf8)


def number(n: int) -> bytes:
    return b"%d" % n


def paren(items: Iterable[bytes]) -> bytes:
    return b"(" + b" ".join(items) + b")"


def flag_list(flags: Iterable[str]) -> bytes:
    """A flag list in a stable order: system flags first, then keywords sorted."""
    fl = sorted(flags, key=lambda f: (not f.startswith("\\"), f.lower()))
    return paren(f.encode("utf-8") for f in fl)


@functools.lru_cache(maxsize=1024)
def flag_set_list(flags: frozenset[str]) -> bytes:
    """`flag_list` of a set of flags, remembered: a mailbox has few distinct flag sets, and a
    large FETCH writes one per message."""
    return flag_list(flags)


def resp_text(text: str, code: str | bytes | None = None) -> bytes:
    """``[code] text``: the response code is written as given (it may hold data)."""
    raw = text.replace("\r", " ").replace("\n", " ").encode("utf-8")
    if code:
        c = code.encode("utf-8") if isinstance(code, str) else code
        return b"[" + c + b"] " + raw
    return raw


def untagged(*parts: bytes) -> bytes:
    """``* part part ...`` CRLF."""
    return b"* " + b" ".join(parts) + CRLF


def tagged(tag: str, status: str, text: str, code: str | bytes | None = None) -> bytes:
    """``tag OK|NO|BAD [code] text`` CRLF."""
    return tag.encode("ascii") + b" " + status.encode("ascii") + b" " + resp_text(text, code) + CRLF


def continuation(text: bytes = b"") -> bytes:
    """``+ text`` CRLF (a continuation request; text may be base64 for AUTHENTICATE)."""
    return b"+ " + text + CRLF


def uid_set(uids: list[int] | tuple[int, ...]) -> bytes:
    """A compact sequence set of ascending UIDs: ``1:3,7,9:10``."""
    out: list[bytes] = []
    runs: list[list[int]] = []
    for u in uids:
        if runs and u == runs[-1][1] + 1:
            runs[-1][1] = u
        else:
            runs.append([u, u])
    for start, end in runs:
        out.append(b"%d" % start if start == end else b"%d:%d" % (start, end))
    return b",".join(out)
