"""A message's header fields as (name, unfolded value) pairs, without the email package.

What `email.parser.BytesHeaderParser` (compat32) gives through `raw_items()`, line for line
the same (tests/message/test_headerfields.py checks it against the parser on random input):
lines end at CRLF, CR or LF; the header ends at the first line that is neither a field
(`name:`, name characters 33-126 except ':', possibly empty), a continuation (leading space
or tab) nor a "From " line; a continuation before any field, a field with an empty name and
a "From " line other than the first (the Unix envelope line) are skipped, and a "From " line
that is the last one ends the header. Delivery parses each message's header this way two or
three times (Message-ID, rulesets, deciders); the parser cost about ten times as much CPU.
"""

from __future__ import annotations

import re

from mailsrv.message.parse import header_end

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
_FIELD_START = re.compile(r"From |[\041-\071\073-\176]*:|[\t ]")


def _clean(value: str) -> str:
    """8-bit bytes read as UTF-8 (RFC 6532), invalid sequences replaced; unfolded."""
    if value.isascii() and "\n" not in value and "\r" not in value:
        return value.strip()  # the same, without the round trip (most fields of most messages)
    text = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return " ".join(line.strip() for line in text.replace("\r", "").split("\n")).strip()


def header_fields(data: bytes) -> list[tuple[str, str]]:
    """The header fields of `data` (a message or just a header block) in order."""
    block = data[: header_end(data, 0, len(data))].decode("ascii", "surrogateescape")
    lines: list[str] = []
    for line in _LINE.findall(block):
        if not _FIELD_START.match(line):
            break
        lines.append(line)
    out: list[tuple[str, str]] = []
    name = ""
    value: list[str] = []
    for number, line in enumerate(lines):
        if line[0] in " \t":
            if name:
                value.append(line)
            continue
        if name:
            out.append(_field(name, value))
            name, value = "", []
        if line.startswith("From "):
            if number == len(lines) - 1 and number != 0:
                break
            continue
        colon = line.find(":")
        if colon <= 0:
            continue
        name, value = line[:colon], [line]
    if name:
        out.append(_field(name, value))
    return out


def _field(name: str, lines: list[str]) -> tuple[str, str]:
    first = lines[0].split(":", 1)[1]
    value = (first.lstrip(" \t") + "".join(lines[1:])).rstrip("\r\n")
    return name, _clean(value)
