"""Junk-filter settings (the type and its limits live in mailsrv.config.junk) and mailbox pattern matching.

Stored as JSON in the account's word database; an account without stored settings uses the defaults the admin
configured (or these). ``validate`` refuses values outside the limits with a message naming the field.
"""

from __future__ import annotations

from mailsrv.config.junk import JunkSettings, validate


def mailbox_matches(name: str, patterns: list[str]) -> bool:
    """Whether a mailbox name matches one of the patterns (prefix match for a trailing '*'); linear."""
    for pattern in patterns:
        if pattern.endswith("*"):
            if name.startswith(pattern[:-1]):
                return True
        elif pattern.upper() == "INBOX":
            if name.upper() == "INBOX":
                return True
        elif name == pattern:
            return True
    return False


__all__ = ["JunkSettings", "mailbox_matches", "validate"]
