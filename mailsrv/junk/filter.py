"""JunkFilter: one account's filter — classify, train, untrain, settings. Blocking (SQLite); see service.py.

Messages are identified for training by a key computed from their content (SHA-256 of the raw bytes), so a
message keeps its training when it is moved or copied between mailboxes, whatever the store's identifiers.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterable
from pathlib import Path

import msgspec

from mailsrv.junk.classify import Verdict, decide
from mailsrv.junk.settings import JunkSettings, validate
from mailsrv.junk.tokens import message_tokens
from mailsrv.junk.worddb import HAM, SPAM, WordDB
from mailsrv.message.parse import header_values, parse_headers

TOKENIZER_VERSION = 1
# Minimum count: once the database holds more tokens than this, tokens seen in one message only are dropped
# (checked every PRUNE_CHECK_EVERY trainings), so one-off words do not grow it without bound.
MAX_TOKENS_KEPT = 300_000
PRUNE_CHECK_EVERY = 500
# Our own Authentication-Results field is the topmost one: the server prepends it at delivery (RFC 8601 §5).
_AR_PASS = re.compile(r"(?i)\b(dkim|spf)=pass\b[^;]*?\b(?:header\.d|smtp\.mailfrom)=([^\s;]+)")


class SettingsError(ValueError):
    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {p}" for f, p in problems))
        self.problems = problems


def message_key(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def sender_keys(raw: bytes) -> list[str]:
    """Reputation keys of a message's verified sender: the From domain when our Authentication-Results say a
    DKIM signature or SPF passed for it (or a parent), and the From address under that domain."""
    headers = parse_headers(raw)
    results = header_values(headers, "authentication-results")[:1]
    froms = header_values(headers, "from")[:1]
    if not results or not froms:
        return []
    match = re.search(r"[\w.+=-]{1,64}@([\w.-]{1,253})", froms[0])
    if match is None:
        return []
    address, from_domain = match.group(0).lower(), match.group(1).lower().rstrip(".")
    for _method, value in _AR_PASS.findall(results[0][:4000]):
        domain = value.rsplit("@", 1)[-1].strip('"').lower().rstrip(".")
        if from_domain == domain or from_domain.endswith("." + domain):
            return ["domain:" + domain, "address:" + address]
    return []


class JunkFilter:
    def __init__(self, path: Path | str, defaults: JunkSettings | None = None) -> None:
        self.db = WordDB(path)
        self.defaults = defaults or JunkSettings()
        self._settings: JunkSettings | None = None  # cached: this object is the database's only writer
        # Classifications read settings in parallel with a save (service.py): a read older than a save is not kept.
        self._settings_lock = threading.Lock()
        self._saves = 0

    def close(self) -> None:
        self.db.close()

    # Settings

    def settings(self) -> JunkSettings:
        cached = self._settings
        if cached is not None:
            return cached
        saves = self._saves
        text = self.db.load_settings_json()
        settings = self.defaults if text is None else msgspec.json.decode(text, type=JunkSettings)
        with self._settings_lock:
            if self._saves == saves:  # not read before a save that a reader in parallel made meanwhile
                self._settings = settings
        return settings

    def save_settings(self, settings: JunkSettings) -> None:
        """Store new settings; SettingsError names every field out of its limits."""
        problems = validate(settings)
        if problems:
            raise SettingsError(problems)
        self.db.save_settings_json(msgspec.json.encode(settings).decode())
        with self._settings_lock:
            self._saves += 1
            self._settings = settings

    # Classification

    def tokens(self, raw: bytes, settings: JunkSettings | None = None) -> set[str]:
        settings = settings or self.settings()
        tokens = message_tokens(raw, tuple(settings.ngram_sizes))
        return tokens.difference(w.lower() for w in settings.ignored_words)

    def classify(self, raw: bytes, settings: JunkSettings | None = None) -> Verdict:
        settings = settings or self.settings()
        ham_total, spam_total = self.db.totals()
        if ham_total == 0 or spam_total == 0:
            # No verdict is possible yet: skip tokenising (most of a delivery's cost in the filter,
            # and deliveries to one account wait for each other here).
            return decide({}, ham_total, spam_total, 0.5, 0, 0)
        tokens = self.tokens(raw, settings)
        return decide(
            self.db.counts(tokens),
            ham_total,
            spam_total,
            settings.threshold,
            settings.top_words,
            settings.rare_word_cutoff,
        )

    def known_good_sender(self, raw: bytes) -> bool:
        """Whether the verified sender has earlier ham here and more ham than junk (then the filter is skipped)."""
        counts = self.db.sender_counts(sender_keys(raw))
        return any(ham > 0 and ham > spam for ham, spam in counts.values())

    # Training

    def trained_as(self, raw: bytes) -> str | None:
        row = self.db.trained_class(message_key(raw))
        return None if row is None else row[0]

    def train(self, raw: bytes, junk: bool) -> bool:
        """Train a message as junk or ham; retrains when it was trained as the other class. False when it was
        already trained as that class (nothing changes)."""
        klass = SPAM if junk else HAM
        key = message_key(raw)
        previous = self.db.trained_class(key)
        if previous is not None:
            if previous[0] == klass:
                return False
            self._untrain(raw, key, previous)
        settings = self.settings()
        ngrams = ",".join(str(n) for n in sorted(settings.ngram_sizes))
        tokens = message_tokens(raw, tuple(sorted(settings.ngram_sizes)))
        self.db.apply(key, tokens, sender_keys(raw), klass, +1, f"{TOKENIZER_VERSION}:{ngrams}")
        if sum(self.db.totals()) % PRUNE_CHECK_EVERY == 0:
            self.prune()
        return True

    def prune(self, limit: int | None = None) -> int:
        """Drops one-off tokens when the database holds more than `limit` (MAX_TOKENS_KEPT) tokens."""
        if self.db.word_count() <= (MAX_TOKENS_KEPT if limit is None else limit):
            return 0
        return self.db.prune_singletons()

    def untrain(self, raw: bytes) -> bool:
        """Forget a message's training exactly; False when it was not trained."""
        key = message_key(raw)
        previous = self.db.trained_class(key)
        if previous is None:
            return False
        self._untrain(raw, key, previous)
        return True

    def _untrain(self, raw: bytes, key: str, previous: tuple[str, str, str]) -> None:
        klass, ngrams, senders = previous
        sizes = tuple(int(n) for n in ngrams.split(":", 1)[1].split(","))
        # The same tokenisation the message was trained with, so untraining is exact even after the
        # account changed its n-gram sizes (ignored words are applied at classification, not training).
        tokens = message_tokens(raw, sizes)
        self.db.apply(key, tokens, senders.split("\n") if senders else [], klass, -1, ngrams)

    def train_many(self, messages: Iterable[tuple[bytes, bool]]) -> int:
        return sum(1 for raw, junk in messages if self.train(raw, junk))
