"""Junk-filter settings: what an account may tune itself, and the defaults an admin sets for new accounts
(``[junk]`` in mailsrv.toml, same names). Limits are checked by ``mailsrv.junk.settings.validate``."""

from __future__ import annotations

from typing import Literal

import msgspec

MAX_IGNORED_WORDS = 1000
MAX_MAILBOX_PATTERNS = 50
MAX_PATTERN_LENGTH = 200


class JunkSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    enabled: bool = True
    # Score at or above which a message is junk; below 0.5 would call undecided messages junk.
    threshold: float = 0.95
    # "junk": deliver to the Junk mailbox; "reject": refuse at SMTP with a temporary-looking reply that reveals
    # nothing, keeping a copy in `rejects_mailbox` for `rejects_keep_days` so a false positive is recoverable.
    action: Literal["junk", "reject"] = "junk"
    rejects_mailbox: str = "Rejects"
    rejects_keep_days: int = 14
    ngram_sizes: list[int] = msgspec.field(default_factory=lambda: [1, 2])
    top_words: int = 150
    ignored_words: list[str] = msgspec.field(default_factory=list)
    # Tokens seen in fewer messages than this (ham + spam) are not evidence.
    rare_word_cutoff: int = 2
    # Moving a message into one of these trains it as junk; into a not-junk one as ham. A pattern is a
    # mailbox name (case-insensitive for INBOX only, as IMAP does) or a prefix ending in "*".
    junk_mailboxes: list[str] = msgspec.field(default_factory=lambda: ["Junk"])
    notjunk_mailboxes: list[str] = msgspec.field(default_factory=lambda: ["INBOX", "Archive", "Archive/*"])
    # Train on messages the user never moved or flagged (e.g. everything in INBOX on retrain).
    train_untouched: bool = False


def validate(settings: JunkSettings) -> list[tuple[str, str]]:
    """(field, problem) for every value out of its limits; empty when the settings are acceptable."""
    problems: list[tuple[str, str]] = []
    if not 0.5 <= settings.threshold <= 0.9999:
        problems.append(("threshold", "must be between 0.5 and 0.9999"))
    if not settings.ngram_sizes or any(n not in (1, 2, 3) for n in settings.ngram_sizes):
        problems.append(("ngram_sizes", "must be a non-empty subset of 1, 2, 3"))
    if not 5 <= settings.top_words <= 1000:
        problems.append(("top_words", "must be between 5 and 1000"))
    if not 1 <= settings.rare_word_cutoff <= 100:
        problems.append(("rare_word_cutoff", "must be between 1 and 100"))
    if not 0 <= settings.rejects_keep_days <= 365:
        problems.append(("rejects_keep_days", "must be between 0 and 365"))
    if not settings.rejects_mailbox.strip() or len(settings.rejects_mailbox) > MAX_PATTERN_LENGTH:
        problems.append(("rejects_mailbox", "must be a mailbox name"))
    if len(settings.ignored_words) > MAX_IGNORED_WORDS or any(not w or len(w) > 100 for w in settings.ignored_words):
        problems.append(("ignored_words", f"at most {MAX_IGNORED_WORDS} words of 1 to 100 characters"))
    for name in ("junk_mailboxes", "notjunk_mailboxes"):
        patterns: list[str] = getattr(settings, name)
        if len(patterns) > MAX_MAILBOX_PATTERNS or any(
            not p or len(p) > MAX_PATTERN_LENGTH or "*" in p[:-1] for p in patterns
        ):
            problems.append((name, "mailbox names, a '*' allowed only at the end"))
    overlap = {p.casefold() for p in settings.junk_mailboxes} & {p.casefold() for p in settings.notjunk_mailboxes}
    if overlap:
        problems.append(("notjunk_mailboxes", f"also listed as junk: {', '.join(sorted(overlap))}"))
    return problems
