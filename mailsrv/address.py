"""Email addresses: localparts, domains, addresses and RFC 5321 paths.

- A `Localpart` is Unicode NFC-normalised when parsed, whatever the source (config, SMTP,
  message headers), so "é" (U+00E9) and "e" + U+0301 are the same localpart. Localparts are
  compared case-sensitively except that the whole address is looked up case-insensitively by
  the account layer (RFC 5321 §2.4 leaves case to the receiving host; users expect folding).
- A `Domain` keeps its A-label (ASCII, lower case, for DNS and comparison) and its U-label
  (for display). Two domains are equal when their A-labels are.
- Parsing follows RFC 5321 §4.1.2 (Mailbox/Path) with RFC 6531 §3.3 (UTF-8 in localparts
  and domains when SMTPUTF8 is in effect) and accepts quoted-string localparts.
- Every parser raises only `AddressError`, whatever the input (hypothesis-tested), and
  `parse(str(x)) == x` for everything it accepts: a localpart that cannot be a dot-atom
  (spaces, NBSP, format characters, empty) is written back as a quoted-string.
- A domain never has an empty label nor an all-numeric last label (an IP address), and its
  A-label is at most 253 octets.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

import idna


class AddressError(ValueError):
    """An invalid address; the message says why and is safe to show to a peer."""


# RFC 5322 §3.2.3 atext, ASCII part. SMTPUTF8 adds every non-ASCII character (RFC 6531 §3.3).
_ATEXT = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~")


_ASCII_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+(?:\.[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+)*")


def _is_atext(ch: str, utf8: bool) -> bool:
    # Non-ASCII controls, format characters, surrogates and spaces (NBSP, U+2028) are not
    # allowed in a dot-atom: they are invisible or unencodable, and a localpart containing
    # them is written as a quoted-string instead.
    return ch in _ATEXT or (utf8 and ord(ch) >= 0x80 and unicodedata.category(ch)[0] not in "CZ")


def _is_utf8_qtext(ch: str) -> bool:
    # RFC 6531 §3.3 allows UTF8-non-ascii in qtext; refuse what cannot be encoded (lone
    # surrogates, Cs) and C1 controls (Cc), which no mail system handles sanely.
    return unicodedata.category(ch) not in ("Cc", "Cs")


@dataclass(frozen=True, order=True)
class Localpart:
    """An NFC-normalised localpart (unquoted form: the quoted-string is decoded)."""

    value: str

    @classmethod
    def parse(cls, text: str, utf8: bool = True) -> Localpart:
        """Parses a dot-string or quoted-string localpart (RFC 5321 §4.1.2)."""
        if not text:
            raise AddressError("empty localpart")
        if _ASCII_DOT_ATOM.fullmatch(text):
            value = text  # the common case, already NFC
        elif text.startswith('"'):
            value = _parse_quoted(text, utf8)
        else:
            if text.startswith(".") or text.endswith(".") or ".." in text:
                raise AddressError("localpart has an empty dot-atom part")
            for ch in text:
                if ch != "." and not _is_atext(ch, utf8):
                    if ord(ch) >= 0x80 and not utf8:
                        raise AddressError("non-ASCII localpart requires SMTPUTF8")
                    raise AddressError(f"invalid character {ch!r} in localpart")
            value = text
        value = unicodedata.normalize("NFC", value)
        if len(value.encode("utf-8")) > 64:
            raise AddressError("localpart longer than 64 octets")
        return cls(value)

    def needs_quoting(self) -> bool:
        v = self.value
        if _ASCII_DOT_ATOM.fullmatch(v):
            return False  # the common case, without a look at every character
        if not v or v.startswith(".") or v.endswith(".") or ".." in v:
            return True
        return any(ch != "." and not _is_atext(ch, True) for ch in v)

    def is_ascii(self) -> bool:
        return self.value.isascii()

    def __str__(self) -> str:
        return self._text

    @functools.cached_property
    def _text(self) -> str:
        # Computed once: a delivery writes its addresses several times (trace fields, log line,
        # delivery ids). A cached_property lives in the instance's __dict__, outside the
        # dataclass fields, so equality, ordering and hashing ignore it.
        if self.needs_quoting():
            escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
            return f'"{escaped}"'
        return self.value


def _parse_quoted(text: str, utf8: bool) -> str:
    if len(text) < 2 or not text.endswith('"'):
        raise AddressError("unterminated quoted localpart")
    out: list[str] = []
    i = 1
    end = len(text) - 1
    while i < end:
        ch = text[i]
        if ch == "\\":
            i += 1
            if i >= end:
                raise AddressError("dangling backslash in quoted localpart")
            ch = text[i]
            if not (32 <= ord(ch) <= 126):
                raise AddressError("invalid quoted-pair in localpart")
        elif ch == '"':
            raise AddressError("unescaped quote in quoted localpart")
        elif ord(ch) >= 0x80:
            if not utf8:
                raise AddressError("non-ASCII localpart requires SMTPUTF8")
            if not _is_utf8_qtext(ch):
                raise AddressError(f"invalid character {ch!r} in quoted localpart")
        elif not (32 <= ord(ch) <= 126):
            raise AddressError("control character in quoted localpart")
        out.append(ch)
        i += 1
    return "".join(out)


@dataclass(frozen=True)
class Domain:
    """A domain name: `ascii` is the lower-case A-label form, `unicode` the U-label form."""

    ascii: str
    unicode: str

    @classmethod
    def parse(cls, text: str) -> Domain:
        """Parses a domain given as A-labels or U-labels (IDNA 2008 with UTS #46 mapping).
        One trailing dot (the root) is removed. Whitespace, empty labels and an all-numeric
        last label (an IP address: RFC 5321 §4.1.3 wants it as a [literal]) are refused.
        Raises AddressError."""
        # Before the memo cache, so huge inputs (UTS #46 drops soft hyphens and the like)
        # neither cost IDNA time nor sit in the cache.
        if len(text) > 1024:
            raise AddressError("domain name longer than 253 octets")
        ascii_form, unicode_form = _idna_forms(text)
        return cls(ascii_form, unicode_form)

    def is_ascii(self) -> bool:
        return self.ascii == self.unicode

    def __str__(self) -> str:
        return self.ascii

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Domain) and self.ascii == other.ascii

    def __hash__(self) -> int:
        return hash(self.ascii)


# IDNA processing costs ~100 µs per domain and the same few domains recur (every local
# address, every RCPT): memoise it. Pure function of its argument, bounded, errors not cached.
@functools.lru_cache(maxsize=4096)
def _idna_forms(text: str) -> tuple[str, str]:
    """(A-label form, U-label form) of a domain; see Domain.parse."""
    name = text[:-1] if text.endswith(".") else text
    if not name:
        raise AddressError("empty domain")
    if len(name) > 253 and name.isascii():
        raise AddressError("domain name longer than 253 octets")
    if "" in name.split("."):
        raise AddressError(f"invalid domain {text!r}: empty label")
    try:
        ascii_form = idna.encode(name, uts46=True).decode("ascii").lower()
    except (idna.IDNAError, UnicodeError, ValueError) as e:
        raise AddressError(f"invalid domain {text!r}: {e}") from None
    # UTS #46 maps other dots (U+3002, U+FF0E) to ".", so check labels again after mapping.
    if ascii_form.endswith("."):
        ascii_form = ascii_form[:-1]
    if "" in ascii_form.split("."):
        raise AddressError(f"invalid domain {text!r}: empty label")
    if len(ascii_form) > 253:
        raise AddressError("domain name longer than 253 octets")
    if ascii_form.rsplit(".", 1)[-1].isdigit():
        raise AddressError(f"invalid domain {text!r}: last label is all-numeric")
    try:
        unicode_form = idna.decode(ascii_form)
    except (idna.IDNAError, UnicodeError, ValueError) as e:
        raise AddressError(f"invalid domain {text!r}: {e}") from None
    return ascii_form, unicode_form


@dataclass(frozen=True)
class Address:
    """localpart@domain. `str()` gives the form with the A-label domain; `display()` the
    U-label form. Equality compares the NFC localpart exactly and the domain's A-label."""

    localpart: Localpart
    domain: Domain

    @classmethod
    def parse(cls, text: str, utf8: bool = True) -> Address:
        """Parses "localpart@domain" (no angle brackets, no display name). Raises AddressError."""
        at = text.rfind("@")
        if at <= 0 or at == len(text) - 1:
            raise AddressError(f"not an address: {text!r}")
        localpart = Localpart.parse(text[:at], utf8=utf8)
        domain_text = text[at + 1 :]
        if not utf8 and not domain_text.isascii():
            raise AddressError("non-ASCII domain requires SMTPUTF8")
        address = cls(localpart, Domain.parse(domain_text))
        # RFC 5321 §4.5.3.1.3: a path is at most 256 octets including the angle brackets.
        if len(str(address).encode("utf-8")) > 254:
            raise AddressError("address longer than 254 octets")
        return address

    def __str__(self) -> str:
        return self._ascii_text

    def display(self) -> str:
        return self._display_text

    # Computed once per address (see Localpart._text).
    @functools.cached_property
    def _ascii_text(self) -> str:
        return f"{self.localpart}@{self.domain.ascii}"

    @functools.cached_property
    def _display_text(self) -> str:
        return f"{self.localpart}@{self.domain.unicode}"

    def is_ascii(self) -> bool:
        return self.localpart.is_ascii() and self.domain.is_ascii()

    def key(self) -> str:
        """The lookup key used for accounts and aliases: case-folded NFC localpart and the
        A-label domain. Two addresses that reach the same account have the same key."""
        return self._key

    @functools.cached_property
    def _key(self) -> str:
        return f"{unicodedata.normalize('NFC', self.localpart.value.casefold())}@{self.domain.ascii}"

    def strip_catchall(self, separator: str | None) -> Address:
        """`user+tag@d` -> `user@d` when separator is "+" (per-domain setting)."""
        if not separator:
            return self
        value = self.localpart.value
        idx = value.find(separator)
        if idx <= 0:
            return self
        return Address(Localpart(value[:idx]), self.domain)


# A client sends the same few paths again and again (every message of a session, every
# session of a sending server): memoised, like the IDNA forms. Addresses are immutable, so
# one object may serve every transaction; errors are not cached.
@functools.lru_cache(maxsize=1024)
def parse_path(text: str, utf8: bool) -> Address | None:
    """Parses an RFC 5321 Reverse-path/Forward-path argument ("<a@b>" or "<>").

    Returns None for the null path "<>". A source route ("<@a,@b:u@d>") is accepted and
    ignored (RFC 5321 §4.1.1.3 / Appendix C). Raises AddressError with a reason."""
    if not (text.startswith("<") and text.endswith(">")):
        raise AddressError("path must be enclosed in <>")
    inner = text[1:-1]
    if inner == "":
        return None
    if inner.startswith("@"):
        colon = inner.find(":")
        if colon < 0:
            raise AddressError("malformed source route")
        # A-d-l = At-domain *( "," At-domain ): each hop must still be a valid domain.
        for hop in inner[:colon].split(","):
            if not hop.startswith("@"):
                raise AddressError("malformed source route")
            Domain.parse(hop[1:])
        inner = inner[colon + 1 :]
    if inner.startswith("[") or inner.endswith("]"):
        raise AddressError("address literals are not accepted")
    return Address.parse(inner, utf8=utf8)
