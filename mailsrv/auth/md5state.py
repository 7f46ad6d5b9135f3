"""MD5 with a resumable internal state, for CRAM-MD5 without stored plaintext.

RFC 2195 CRAM-MD5 computes HMAC-MD5(password, challenge). HMAC (RFC 2104) starts by
compressing one block, (key XOR ipad), for the inner hash and one block, (key XOR opad),
for the outer hash. Storing the two MD5 chaining values after those first blocks lets the
server finish HMAC for any challenge without knowing the password (the states are still
secret: they are password-equivalent for CRAM-MD5, though for nothing else).

hashlib cannot be seeded with a chaining value, so this module carries a small MD5
(RFC 1321) in pure Python. It only ever runs on a few blocks per login.

Invariant: `md5_resume(md5_state_after_block(b), 64, rest)` equals
`hashlib.md5(b + rest).digest()` for any 64-byte block `b`.
"""

from __future__ import annotations

import math
import struct

_INIT = (0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476)

# RFC 1321 §3.4: T[i] = floor(2^32 * abs(sin(i + 1))).
_T = [int(abs(math.sin(i + 1)) * 2**32) & 0xFFFFFFFF for i in range(64)]
_SHIFTS = [7, 12, 17, 22] * 4 + [5, 9, 14, 20] * 4 + [4, 11, 16, 23] * 4 + [6, 10, 15, 21] * 4
_MASK = 0xFFFFFFFF

BLOCK_SIZE = 64
STATE_SIZE = 16


def _rotl(x: int, n: int) -> int:
    return ((x << n) | (x >> (32 - n))) & _MASK


def _compress(state: tuple[int, int, int, int], block: bytes) -> tuple[int, int, int, int]:
    """One application of the MD5 compression function (RFC 1321 §3.4) to a 64-byte block."""
    x = struct.unpack("<16I", block)
    a, b, c, d = state
    for i in range(64):
        if i < 16:
            f = (b & c) | (~b & d)
            g = i
        elif i < 32:
            f = (d & b) | (~d & c)
            g = (5 * i + 1) % 16
        elif i < 48:
            f = b ^ c ^ d
            g = (3 * i + 5) % 16
        else:
            f = c ^ (b | (~d & _MASK))
            g = (7 * i) % 16
        f = (f + a + _T[i] + x[g]) & _MASK
        a, d, c = d, c, b
        b = (b + _rotl(f, _SHIFTS[i])) & _MASK
    s = state
    return ((s[0] + a) & _MASK, (s[1] + b) & _MASK, (s[2] + c) & _MASK, (s[3] + d) & _MASK)


def md5_state_after_block(block: bytes) -> bytes:
    """The 16-byte MD5 chaining value after compressing one 64-byte block from the
    standard initial value."""
    if len(block) != BLOCK_SIZE:
        raise ValueError("MD5 block must be 64 bytes")
    return struct.pack("<4I", *_compress(_INIT, block))


def md5_resume(state: bytes, consumed: int, data: bytes) -> bytes:
    """Finishes an MD5 computation: `state` is the chaining value after `consumed` bytes
    (a multiple of 64) have been compressed, `data` is the rest of the message."""
    if len(state) != STATE_SIZE or consumed % BLOCK_SIZE:
        raise ValueError("bad MD5 state")
    a, b, c, d = struct.unpack("<4I", state)
    h = (a, b, c, d)
    total_bits = ((consumed + len(data)) * 8) & 0xFFFFFFFFFFFFFFFF
    # RFC 1321 §3.1-3.2: append 0x80, zero-pad to 56 mod 64, then the bit length (LE).
    padded = data + b"\x80" + b"\x00" * ((55 - len(data)) % 64) + struct.pack("<Q", total_bits)
    for off in range(0, len(padded), BLOCK_SIZE):
        h = _compress(h, padded[off : off + BLOCK_SIZE])
    return struct.pack("<4I", *h)
