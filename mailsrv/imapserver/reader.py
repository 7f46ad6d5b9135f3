"""A recursive-descent reader over one complete IMAP command (RFC 9051 §9 grammar).

The command assembler (`mailsrv.imapserver.commandreader`) hands over the whole command as
bytes: the final CRLF removed, and every literal kept in place exactly as it arrived, i.e.
``{n}`` / ``{n+}`` / ``~{n}`` followed by CRLF and then the n octets of its content. The
reader therefore sees literals at the byte positions where they occur and never needs
the network.

Every method either consumes what it returns or raises `ParseError` (a `SyntaxError_`,
answered with BAD) without a useful position guarantee; callers that want to try an
alternative use `peek()`/`take()` first or save and restore `pos`.

Strings come back as `str` (decoded as UTF-8; invalid UTF-8 is a ParseError) or, from the
``*_bytes`` variants, as raw bytes (SEARCH with a CHARSET, APPEND message data).
"""

from __future__ import annotations

import datetime
import unicodedata
from collections.abc import Callable
from typing import TypeVar

from mailsrv.imapserver import mutf7
from mailsrv.imapserver.commandreader import SpooledLiteral
from mailsrv.imapserver.errors import ParseError
from mailsrv.message.source import MessageSource

T = TypeVar("T")

# RFC 9051 §9: atom-specials = "(" / ")" / "{" / SP / CTL / list-wildcards / quoted-specials /
# resp-specials. We also refuse 8-bit octets in atoms: they are only allowed inside strings.
_ATOM_SPECIALS = frozenset(b'(){ %*"\\]')
_LIST_WILDCARDS = frozenset(b"%*")

MAX_NUMBER = 2**32 - 1  # RFC 9051 §9 number
MAX_NUMBER64 = 2**63 - 1  # RFC 9051 §9 number64

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")

SYSTEM_FLAG_NAMES = {
    "\\answered": "\\Answered",
    "\\flagged": "\\Flagged",
    "\\deleted": "\\Deleted",
    "\\seen": "\\Seen",
    "\\draft": "\\Draft",
}


def _is_atom_char(b: int) -> bool:
    return 0x20 < b < 0x7F and b not in _ATOM_SPECIALS


def _is_astring_char(b: int) -> bool:
    return _is_atom_char(b) or b == 0x5D  # "]" (resp-specials) is allowed in astrings


def _is_list_char(b: int) -> bool:
    return _is_astring_char(b) or b in _LIST_WILDCARDS


def normalise_mailbox_name(name: str) -> str:
    """The store's form of a mailbox name: NFC, and "INBOX" in any case (as a whole or as
    the first hierarchy level) spelled "INBOX" (RFC 9051 §5.1)."""
    name = unicodedata.normalize("NFC", name)
    head, sep, rest = name.partition("/")
    if head.upper() == "INBOX":
        return "INBOX" + sep + rest
    return name


class Reader:
    """Parses one command. `utf8_names` is True when mailbox names are UTF-8 (IMAP4rev2 or
    UTF8=ACCEPT enabled), False for IMAP4rev1 modified UTF-7 (RFC 3501 §5.1.3)."""

    def __init__(
        self, data: bytes, *, utf8_names: bool = False, spooled: dict[int, SpooledLiteral] | None = None
    ) -> None:
        self.data = data
        self.pos = 0
        self.utf8_names = utf8_names
        # Large APPEND literals are not in `data`: offset where each would start -> its spool.
        self.spooled = spooled or {}

    # --- primitives ----------------------------------------------------------------------
    def error(self, what: str) -> ParseError:
        return ParseError(what, self.pos)

    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def end(self) -> None:
        """Asserts that the whole command was consumed."""
        if not self.at_end():
            raise self.error("unexpected characters at end of command")

    def peek(self, n: int = 1) -> bytes:
        return self.data[self.pos : self.pos + n]

    def peek_ci(self, word: bytes) -> bool:
        """True when the input continues with `word` (ASCII case-insensitive)."""
        return self.data[self.pos : self.pos + len(word)].upper() == word.upper()

    def take(self, token: bytes) -> bool:
        """Consumes `token` (ASCII case-insensitive) when it comes next."""
        if self.peek_ci(token):
            self.pos += len(token)
            return True
        return False

    def expect(self, token: bytes) -> None:
        if not self.take(token):
            raise self.error(f"expected {token.decode('ascii', 'replace')!r}")

    def sp(self) -> None:
        self.expect(b" ")

    def rest(self) -> bytes:
        """Everything not consumed yet (consumes it)."""
        r = self.data[self.pos :]
        self.pos = len(self.data)
        return r

    # --- atoms and numbers ---------------------------------------------------------------
    def _span(self, pred: Callable[[int], bool]) -> bytes:
        start = self.pos
        data = self.data
        n = len(data)
        while self.pos < n and pred(data[self.pos]):
            self.pos += 1
        return data[start : self.pos]

    def atom(self) -> str:
        a = self._span(_is_atom_char)
        if not a:
            raise self.error("expected an atom")
        return a.decode("ascii")

    def keyword(self) -> str:
        """An atom, upper-cased (command names, FETCH/STATUS item names...)."""
        return self.atom().upper()

    def tag(self) -> str:
        """RFC 9051 §9 tag: astring characters except "+"."""
        t = self._span(lambda b: _is_astring_char(b) and b != 0x2B)
        if not t:
            raise self.error("expected a tag")
        return t.decode("ascii")

    def number(self) -> int:
        return self._digits(MAX_NUMBER)

    def number64(self) -> int:
        return self._digits(MAX_NUMBER64)

    def nz_number(self) -> int:
        n = self.number()
        if n == 0:
            raise self.error("expected a non-zero number")
        return n

    def _digits(self, limit: int) -> int:
        d = self._span(lambda b: 0x30 <= b <= 0x39)
        if not d:
            raise self.error("expected a number")
        if len(d) > 20 or int(d) > limit:
            raise self.error("number too large")
        return int(d)

    # --- strings -------------------------------------------------------------------------
    def _literal_header(self) -> tuple[int, bool] | None:
        """Parses `{n}` / `{n+}` / `~{n}` CRLF; returns (length, is_literal8) or None when no
        literal starts here (nothing consumed then)."""
        start = self.pos
        literal8 = self.take(b"~")
        if not self.take(b"{"):
            self.pos = start
            return None
        n = self.number64()
        self.take(b"+")
        self.expect(b"}")
        self.expect(b"\r\n")
        if self.pos in self.spooled:
            return n, literal8
        if self.pos + n > len(self.data):
            raise self.error("literal shorter than announced")
        return n, literal8

    def _literal_bytes(self, allow_literal8: bool) -> bytes | None:
        h = self._literal_header()
        if h is None:
            return None
        n, literal8 = h
        if literal8 and not allow_literal8:
            raise self.error("literal8 not allowed here")
        if self.pos in self.spooled:
            raise self.error("literal too large here")
        data = self.data[self.pos : self.pos + n]
        self.pos += n
        if not literal8 and b"\x00" in data:
            # RFC 9051 §4.3: NUL is not allowed in a literal (only in literal8, with BINARY).
            raise self.error("NUL in literal")
        return data

    def message_literal(self) -> bytes | MessageSource:
        """APPEND's message data: a literal or literal8 (RFC 3516), which may have been
        spooled to a file as it arrived (then a `MessageSource` over it)."""
        if self.peek() not in (b"{", b"~"):
            raise self.error("expected the message as a literal")
        start = self.pos
        h = self._literal_header()
        if h is None:
            raise self.error("expected a literal")
        _, literal8 = h
        spooled = self.spooled.get(self.pos)
        if spooled is None:
            self.pos = start
            return self.string_bytes(allow_literal8=True)
        if not literal8 and spooled.has_nul:
            raise self.error("NUL in literal")
        return spooled.spool.source()

    def _quoted_bytes(self) -> bytes | None:
        if self.peek() != b'"':
            return None
        self.pos += 1
        out = bytearray()
        data = self.data
        n = len(data)
        while True:
            if self.pos >= n:
                raise self.error("unterminated quoted string")
            b = data[self.pos]
            self.pos += 1
            if b == 0x22:
                return bytes(out)
            if b == 0x5C:
                if self.pos >= n or data[self.pos] not in b'"\\':
                    raise self.error("bad escape in quoted string")
                out.append(data[self.pos])
                self.pos += 1
            elif b in (0x0D, 0x0A, 0x00):
                raise self.error("CR, LF or NUL in quoted string")
            else:
                out.append(b)

    def string_bytes(self, *, allow_literal8: bool = False) -> bytes:
        q = self._quoted_bytes()
        if q is not None:
            return q
        lit = self._literal_bytes(allow_literal8)
        if lit is not None:
            return lit
        raise self.error("expected a string")

    def astring_bytes(self) -> bytes:
        # "~" is an ATOM-CHAR (RFC 9051 §9): "~foo" is an atom; only "~{" starts a literal8,
        # which an astring does not allow (string_bytes says so).
        if self.peek() in (b'"', b"{") or self.data.startswith(b"~{", self.pos):
            return self.string_bytes()
        a = self._span(_is_astring_char)
        if not a:
            raise self.error("expected an atom or string")
        return a

    def nstring_bytes(self) -> bytes | None:
        if self.peek_ci(b"NIL") and not _is_atom_char(
            self.data[self.pos + 3] if self.pos + 3 < len(self.data) else 0x20
        ):
            self.pos += 3
            return None
        return self.string_bytes()

    @staticmethod
    def _text(raw: bytes, reader: Reader) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise reader.error("invalid UTF-8") from None

    def string(self) -> str:
        return self._text(self.string_bytes(), self)

    def astring(self) -> str:
        return self._text(self.astring_bytes(), self)

    def nstring(self) -> str | None:
        raw = self.nstring_bytes()
        return None if raw is None else self._text(raw, self)

    # --- mailbox names -------------------------------------------------------------------
    def _decode_name(self, raw: bytes) -> str:
        if raw.upper() == b"INBOX":
            return "INBOX"
        if self.utf8_names:
            name = self._text(raw, self)
        else:
            try:
                name = mutf7.decode(raw)
            except mutf7.MUTF7Error:
                # RFC 3501 §5.1.3 says clients must not send other names; a client that
                # sends 8-bit UTF-8 anyway most likely means UTF-8.
                name = self._text(raw, self)
        return normalise_mailbox_name(name)

    def mailbox(self) -> str:
        """A mailbox name in the store's form (see `normalise_mailbox_name`)."""
        return self._decode_name(self.astring_bytes())

    def list_mailbox(self) -> str:
        """A LIST pattern (RFC 9051 §9 list-mailbox), decoded like a mailbox name but with
        the wildcards kept."""
        if self.peek() in (b'"', b"{"):
            raw = self.string_bytes()
        else:
            raw = self._span(_is_list_char)
            if not raw:
                raise self.error("expected a mailbox pattern")
        if self.utf8_names:
            return unicodedata.normalize("NFC", self._text(raw, self))
        try:
            return unicodedata.normalize("NFC", mutf7.decode(raw))
        except mutf7.MUTF7Error:
            return unicodedata.normalize("NFC", self._text(raw, self))

    # --- lists ---------------------------------------------------------------------------
    def paren_list(self, item: Callable[[], T], *, allow_empty: bool = True) -> list[T]:
        """``"(" [item *(SP item)] ")"``."""
        self.expect(b"(")
        out: list[T] = []
        if self.take(b")"):
            if not allow_empty:
                raise self.error("empty list")
            return out
        while True:
            out.append(item())
            if self.take(b")"):
                return out
            self.sp()

    def flag(self) -> str:
        """One flag (RFC 9051 §9 flag): system flags in canonical case, keywords as given.
        \\Recent is refused (it cannot be stored)."""
        if self.take(b"\\"):
            name = "\\" + self.atom()
            canonical = SYSTEM_FLAG_NAMES.get(name.lower())
            if canonical is None:
                raise self.error(f"unknown system flag {name}")
            return canonical
        return self.atom()

    def flag_list(self) -> list[str]:
        return self.paren_list(self.flag)

    def store_flags(self) -> list[str]:
        """A flag list, or flags separated by spaces without parentheses (RFC 9051 §6.4.6)."""
        if self.peek() == b"(":
            return self.flag_list()
        flags = [self.flag()]
        while self.peek() == b" " and self.pos + 1 < len(self.data) and self.data[self.pos + 1] != 0x28:
            save = self.pos
            self.sp()
            try:
                flags.append(self.flag())
            except ParseError:
                self.pos = save
                break
        return flags

    # --- dates ---------------------------------------------------------------------------
    def _month(self) -> int:
        m = self.data[self.pos : self.pos + 3].decode("ascii", "replace").lower()
        if m not in _MONTHS:
            raise self.error("bad month")
        self.pos += 3
        return _MONTHS.index(m) + 1

    def _fixed_digits(self, n: int) -> int:
        d = self.data[self.pos : self.pos + n]
        if len(d) != n or not d.isdigit():
            raise self.error("bad date/time")
        self.pos += n
        return int(d)

    def date(self) -> datetime.date:
        """RFC 9051 §9 date (SEARCH BEFORE/ON/SINCE...): d-Mon-yyyy, optionally quoted."""
        quoted = self.take(b'"')
        day_digits = self._span(lambda b: 0x30 <= b <= 0x39)
        if not 1 <= len(day_digits) <= 2:
            raise self.error("bad day")
        self.expect(b"-")
        month = self._month()
        self.expect(b"-")
        year = self._fixed_digits(4)
        if quoted:
            self.expect(b'"')
        try:
            return datetime.date(year, month, int(day_digits))
        except ValueError:
            raise self.error("invalid date") from None

    def date_time(self) -> datetime.datetime:
        """RFC 9051 §9 date-time: "dd-Mon-yyyy hh:mm:ss +zzzz" (day may be space-padded)."""
        self.expect(b'"')
        if self.take(b" "):
            day = self._fixed_digits(1)
        else:
            day = self._fixed_digits(2)
        self.expect(b"-")
        month = self._month()
        self.expect(b"-")
        year = self._fixed_digits(4)
        self.sp()
        hour = self._fixed_digits(2)
        self.expect(b":")
        minute = self._fixed_digits(2)
        self.expect(b":")
        second = self._fixed_digits(2)
        self.sp()
        sign = self.peek()
        if sign not in (b"+", b"-"):
            raise self.error("bad zone")
        self.pos += 1
        zone = self._fixed_digits(4)
        self.expect(b'"')
        offset = datetime.timedelta(hours=zone // 100, minutes=zone % 100)
        if sign == b"-":
            offset = -offset
        try:
            return datetime.datetime(year, month, day, hour, minute, second, tzinfo=datetime.timezone(offset))
        except ValueError:
            raise self.error("invalid date-time") from None
