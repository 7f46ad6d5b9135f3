"""The header hash of a DKIM signature (RFC 6376 §3.7), byte for byte what dkimpy hashes.

dkimpy (`dkim.hash_headers`) canonicalises every field of the header, then picks the signed
ones; its relaxed canonicalisation runs two regular expressions per field, and its pattern
that blanks the b= value backtracks at every octet of it (~40 us for a 2048-bit signature).
Here only the signed fields are canonicalised, with plain byte operations where the text
allows, and b= is blanked by a pattern that matches the same text in one pass.
tests/dns/test_dkimheader.py checks each step against dkimpy's on generated input.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

import dkim

# dkimpy's RE_BTAG is `([;\s]b FWS =)(?: FWS [a-zA-Z0-9+/=])* (?:\r?\n\Z)?` with FWS a pattern
# that matches exactly the runs of \s. The repeated group ends at the last base64 octet of the
# run of white space and base64 octets after "=": a greedy class run and one base64 octet
# find the same end, without a group entered per octet.
_B_VALUE = re.compile(rb"([;\s]b\s*=)(?:[\sa-zA-Z0-9+/=]*[a-zA-Z0-9+/=])?(?:\r?\n\Z)?")
# The white space relaxed canonicalisation changes: runs of two or more, and lone tabs.
_WSP_TO_SPACE = re.compile(rb"[ \t]{2,}|\t")


class Hash(Protocol):
    def update(self, data: bytes, /) -> None: ...


def relaxed_field(name: bytes, value: bytes) -> tuple[bytes, bytes]:
    """RFC 6376 §3.4.2 as dkimpy does it: the name in lower case, the value unfolded (every
    LF and a CR right before one deleted), white space runs made one space, the ends stripped,
    and a CRLF appended."""
    if b"\n" in value:
        value = value.replace(b"\r\n", b"").replace(b"\n", b"")
    if b"\t" in value or b"  " in value:
        value = _WSP_TO_SPACE.sub(b" ", value)
    return name.lower().rstrip(), value.strip() + b"\r\n"


def without_b_value(value: bytes) -> bytes:
    """The DKIM-Signature field value with its b= value removed (RFC 6376 §3.5, §3.7)."""
    return _B_VALUE.sub(rb"\1", value)


def hash_headers(
    digest: Hash,
    relaxed: bool,
    headers: Sequence[Sequence[bytes]],
    include_headers: list[bytes],
    sig_header: tuple[bytes, bytes],
) -> list[tuple[bytes, bytes]]:
    """Hashes the signed header fields (chosen as dkimpy chooses them, bottom-up per name),
    then the signature's own field without its b= value and without its final CRLF. Returns
    the signed fields canonicalised. A field's name has no white space (dkimpy's parser takes
    it as printable octets up to ":"), so choosing before canonicalising chooses the same."""
    chosen: list[tuple[bytes, bytes]] = dkim.select_headers(headers, include_headers)
    if relaxed:
        signed = [relaxed_field(name, value) for name, value in chosen]
        name, value = relaxed_field(sig_header[0], without_b_value(sig_header[1]))
    else:
        signed = [(name, value) for name, value in chosen]
        name, value = sig_header[0], without_b_value(sig_header[1])
    digest.update(b"".join(b"%s:%s" % (field, text) for field, text in signed) + name + b":" + value.rstrip())
    return signed
