"""Writing the common composed message without the email package: ASCII header fields that fit on
one line, a text and/or HTML body, no files. The email package spends about 1 ms of CPU on such a
message (it parses every field it is given back into a tree, then folds the tree); this writes the
same bytes directly in a few tens of microseconds.

The contract is exact: for what it accepts, `write_message` returns byte for byte what
mailsrv/ops/compose.py's email-package path writes (tests/ops/test_compose_fast.py compares both on
thousands of generated drafts); for anything else it returns None and compose uses the email package.
So everything that needs judgement stays with the email package: folding, RFC 2047 encoded words,
RFC 6532 UTF-8 header fields, quoted local parts, domain literals, files, and field names the email
package gives a structure of their own.
"""

from __future__ import annotations

import email.headerregistry
import email.quoprimime
import re
from collections.abc import Sequence
from email._header_value_parser import SPECIALS, quote_string
from email.generator import BytesGenerator
from email.headerregistry import Address as HeaderAddress

MAX_LINE = 78  # the SMTP policy's max_line_length: a longer field would be folded
_ATEXT = r"A-Za-z0-9!#$%&'*+/=?^_`{|}~-"
_DOT_ATOM = rf"[{_ATEXT}]+(?:\.[{_ATEXT}]+)*"
_LOCALPART = re.compile(_DOT_ATOM)
_DOMAIN = re.compile(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")
_MESSAGE_ID = re.compile(rf"<{_DOT_ATOM}@{_DOT_ATOM}>")
_PRINTABLE = re.compile(r"[\x20-\x7e]*")
# Field names the email package parses into a structure (dates, addresses, MIME fields): their
# output may differ from the value given, so a caller's own field with such a name goes the slow way.
_STRUCTURED = frozenset(email.headerregistry._default_header_map)  # type: ignore[attr-defined]
_NL = "\r\n"

FieldValue = str | Sequence[HeaderAddress]


def _plain(value: str) -> bool:
    """An unstructured value the email package writes as it is (when the line fits): printable
    ASCII without anything that could read as an RFC 2047 encoded word."""
    return _PRINTABLE.fullmatch(value) is not None and "=?" not in value


def _address(a: HeaderAddress) -> str | None:
    if not (_LOCALPART.fullmatch(a.username) and _DOMAIN.fullmatch(a.domain) and _plain(a.display_name)):
        return None
    spec = f"{a.username}@{a.domain}"
    name = a.display_name
    if not name:
        return spec
    if not SPECIALS.isdisjoint(name):
        name = quote_string(name)
    return f"{name} <{spec}>"


def _field(name: str, value: FieldValue) -> str | None:
    """`Name: value` as one line, or None when the email package would write it otherwise."""
    if isinstance(value, str):
        if name.lower() == "message-id":
            if not _MESSAGE_ID.fullmatch(value):
                return None
        elif name.lower() in _STRUCTURED and name.lower() not in ("subject", "date"):
            return None
        elif name.lower().startswith("content-"):
            return None  # the email package's set_content drops (and multipart moves) Content-* fields
        elif not _plain(value):
            return None
        line = f"{name}: {value}" if value else f"{name}:"
    else:
        parts = [_address(a) for a in value]
        if not parts or any(p is None for p in parts):
            return None
        line = f"{name}: " + ", ".join(p for p in parts if p is not None)
    return line if len(line) <= MAX_LINE else None


def text_transfer_encoding(text: str) -> str:
    """7bit when it is (short-lined ASCII), else quoted-printable: readable, and safe through
    any relay without 8BITMIME."""
    if text.isascii() and max(map(len, text.splitlines()), default=0) <= 998:
        return "7bit"
    return "quoted-printable"


def _text_part(text: str, subtype: str) -> tuple[str, bytes]:
    """(the part's Content-Type and Content-Transfer-Encoding lines, its encoded body), as the
    email package's set_content(text, subtype=..., charset="utf-8", cte=...) writes them: the
    lines split as bytes.splitlines does, ended with CRLF."""
    cte = text_transfer_encoding(text)
    lines = text.encode("utf-8").splitlines()
    if cte == "7bit":
        payload = b"\r\n".join(lines) + b"\r\n"
    else:
        # The encoder writes "\n" line ends and encodes any CR in a line.
        encoded = email.quoprimime.body_encode((b"\n".join(lines) + b"\n").decode("latin-1"), MAX_LINE)
        payload = encoded.replace("\n", _NL).encode("ascii")
    head = f'Content-Type: text/{subtype}; charset="utf-8"{_NL}Content-Transfer-Encoding: {cte}{_NL}'
    return head, payload


def write_message(fields: Sequence[tuple[str, FieldValue]], text: str, html: str) -> bytes | None:
    """The message with these header fields (in order) and body: `text` alone (text/plain), `html`
    alone (text/html), or both (multipart/alternative, plain first). None when the email package
    must write it."""
    lines: list[str] = []
    for name, value in fields:
        line = _field(name, value)
        if line is None:
            return None
        lines.append(line)
    header = _NL.join(lines) + _NL if lines else ""
    if not (text and html):
        part_head, payload = _text_part(text or html, "plain" if text else "html")
        return f"{header}{part_head}MIME-Version: 1.0{_NL}{_NL}".encode("ascii") + payload
    pieces = (_text_part(text, "plain"), _text_part(html, "html"))
    parts = [(head + _NL).encode("ascii") + body for head, body in pieces]
    boundary: str = BytesGenerator._make_boundary(_NL.encode("ascii").join(parts))  # type: ignore[attr-defined]
    delimiter = f"--{boundary}".encode("ascii")
    top = (
        f'{header}MIME-Version: 1.0{_NL}Content-Type: multipart/alternative;{_NL} boundary="{boundary}"{_NL}{_NL}'
    ).encode("ascii")
    return b"".join(
        (top, delimiter, b"\r\n", parts[0], b"\r\n", delimiter, b"\r\n", parts[1], b"\r\n", delimiter, b"--\r\n")
    )
