"""Flags as the index stores them: canonical system flags, keywords compared
case-insensitively (RFC 9051 §2.3.2), and the space-separated text form of the `flags` column."""

from __future__ import annotations

import functools
from collections.abc import Iterable

from mailsrv.store.interfaces import (
    SYSTEM_FLAGS,
    FlagMode,
)

_SYSTEM_BY_LOWER = {f.lower(): f for f in SYSTEM_FLAGS}


def canonical_flag(flag: str) -> str:
    if flag.startswith("\\"):
        return _SYSTEM_BY_LOWER.get(flag.lower(), flag)
    return flag


def merge_flags(current: frozenset[str], mode: str, given: frozenset[str]) -> frozenset[str]:
    """The flags after a STORE. Keywords compare case-insensitively and keep the spelling
    the message already has (RFC 9051 §2.3.2: flags are case-insensitive)."""
    have = {f.lower(): f for f in current}
    if mode == FlagMode.REPLACE:
        return frozenset(have.get(f.lower(), f) for f in given)
    if mode == FlagMode.ADD:
        for f in given:
            have.setdefault(f.lower(), f)
    else:
        for f in given:
            have.pop(f.lower(), None)
    return frozenset(have.values())


def given_flags(flags: Iterable[str]) -> frozenset[str]:
    """Canonical system flags, keywords deduplicated case-insensitively (first spelling
    wins), no \\Recent."""
    seen: dict[str, str] = {}
    for f in flags:
        if f.lower() != "\\recent":
            seen.setdefault(f.lower(), canonical_flag(f))
    return frozenset(seen.values())


def flags_text(flags: Iterable[str]) -> str:
    return " ".join(sorted(set(flags)))


@functools.lru_cache(maxsize=4096)
def flags_set(text: str) -> frozenset[str]:
    return frozenset(text.split()) if text else frozenset()
