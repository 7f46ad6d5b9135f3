"""Sizes as people write them: `1G`, `500M`, `1.5GiB`, `2048` (octets). Binary multiples
(1K = 1024 octets), as `df -h` and most mail servers' quota settings mean them."""

from __future__ import annotations

import re

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*", re.IGNORECASE)
MAX_SIZE = 1 << 60  # far above any disk; keeps the number an ordinary integer


def parse_size(text: str) -> int:
    """Octets for `text`; ValueError (with the accepted forms) otherwise."""
    m = _SIZE.fullmatch(text)
    if m is None or len(text) > 40:
        raise ValueError(f"invalid size {text!r}: use octets or a number with K, M, G or T (1G = 1024M)")
    number, unit = m.group(1), m.group(2).upper()
    if "." in number and not unit:
        raise ValueError(f"invalid size {text!r}: a fraction of an octet")
    value = int(float(number) * _UNITS[unit]) if "." in number else int(number) * _UNITS[unit]
    if value > MAX_SIZE:
        raise ValueError(f"invalid size {text!r}: too large")
    return value


def format_size(octets: int) -> str:
    """The largest unit that divides `octets` exactly: 1073741824 -> "1G", 1500 -> "1500"."""
    for unit in ("T", "G", "M", "K"):
        if octets and octets % _UNITS[unit] == 0:
            return f"{octets // _UNITS[unit]}{unit}"
    return str(octets)
