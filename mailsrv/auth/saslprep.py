"""SASLprep (RFC 4013), the stringprep profile SCRAM applies to passwords and user names.

RFC 5802 §2.2 Normalize() and §5.1: the password is SASLprep'd before Hi(), so a password
set as "I\u00adX" (soft hyphen, mapped to nothing) and typed as "IX" derive the same keys.
PLAIN/LOGIN verification prepares the password the same way (RFC 4616 §2), so every
mechanism accepts the same set of passwords.

Invariant: `saslprep` either returns a prepared string or raises `SASLprepError`; it never
returns a string containing a prohibited character.
"""

from __future__ import annotations

import stringprep
import unicodedata


class SASLprepError(ValueError):
    """The string contains a character RFC 4013 prohibits, or breaks the bidi rule."""


def _prohibited(ch: str) -> bool:
    # RFC 4013 §2.3 prohibited output.
    return (
        stringprep.in_table_c12(ch)
        or stringprep.in_table_c21_c22(ch)
        or stringprep.in_table_c3(ch)
        or stringprep.in_table_c4(ch)
        or stringprep.in_table_c5(ch)
        or stringprep.in_table_c6(ch)
        or stringprep.in_table_c7(ch)
        or stringprep.in_table_c8(ch)
        or stringprep.in_table_c9(ch)
    )


def saslprep(text: str, allow_unassigned: bool = False) -> str:
    """Prepares `text` per RFC 4013 (stored strings when allow_unassigned is False)."""
    # §2.1 mapping: non-ASCII spaces to SPACE, "commonly mapped to nothing" removed.
    mapped = "".join(" " if stringprep.in_table_c12(ch) else ch for ch in text if not stringprep.in_table_b1(ch))
    # §2.2 normalisation: form KC.
    prepared = unicodedata.normalize("NFKC", mapped)
    if not prepared:
        return prepared
    for ch in prepared:
        if _prohibited(ch):
            raise SASLprepError("prohibited character")
        if not allow_unassigned and stringprep.in_table_a1(ch):
            raise SASLprepError("unassigned code point")
    # §2.5 / RFC 3454 §6 bidirectional characters.
    has_ral = any(stringprep.in_table_d1(ch) for ch in prepared)
    if has_ral:
        if any(stringprep.in_table_d2(ch) for ch in prepared):
            raise SASLprepError("mixed bidirectional text")
        if not (stringprep.in_table_d1(prepared[0]) and stringprep.in_table_d1(prepared[-1])):
            raise SASLprepError("bidirectional text must start and end with RandALCat")
    return prepared
