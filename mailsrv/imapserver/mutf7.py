"""Modified UTF-7 for IMAP4rev1 mailbox names (RFC 3501 §5.1.3).

IMAP4rev2 and UTF8=ACCEPT sessions use UTF-8 names directly (RFC 9051 §5.1); rev1
sessions see and send names in this encoding: printable ASCII stands for itself except
"&", which is written "&-"; everything else is UTF-16BE in a modified base64 (","
instead of "/", no padding) between "&" and "-".
"""

from __future__ import annotations

import base64


class MUTF7Error(ValueError):
    pass


def encode(name: str) -> bytes:
    out = bytearray()
    pending: list[str] = []

    def flush() -> None:
        if pending:
            raw = "".join(pending).encode("utf-16-be")
            out.extend(b"&" + base64.b64encode(raw).rstrip(b"=").replace(b"/", b",") + b"-")
            pending.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.extend(b"&-" if ch == "&" else ch.encode("ascii"))
        else:
            pending.append(ch)
    flush()
    return bytes(out)


def decode(data: bytes) -> str:
    """Strict decoding: raises MUTF7Error for anything RFC 3501 §5.1.3 does not allow
    (8-bit bytes, unterminated shifts, padding, shifted printable ASCII)."""
    out: list[str] = []
    i = 0
    n = len(data)
    while i < n:
        c = data[i]
        if c >= 0x80 or c < 0x20 or c == 0x7F:
            raise MUTF7Error("not 7-bit printable")
        if c != 0x26:  # "&"
            out.append(chr(c))
            i += 1
            continue
        end = data.find(b"-", i + 1)
        if end < 0:
            raise MUTF7Error("unterminated &-shift")
        chunk = data[i + 1 : end]
        i = end + 1
        if not chunk:
            out.append("&")
            continue
        if not all(b in b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+," for b in chunk):
            raise MUTF7Error("bad base64 in &-shift")
        b64 = chunk.replace(b",", b"/")
        b64 += b"=" * (-len(b64) % 4)
        try:
            raw = base64.b64decode(b64, validate=True)
            text = raw.decode("utf-16-be")
        except (ValueError, UnicodeDecodeError) as e:
            raise MUTF7Error("bad UTF-16 in &-shift") from e
        if any(0x20 <= ord(ch) <= 0x7E for ch in text):
            raise MUTF7Error("printable ASCII must not be shifted")
        out.append(text)
    return "".join(out)
