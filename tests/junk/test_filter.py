"""mailsrv.junk.filter: classification after training, exact untraining, retraining, settings, reputation."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailsrv.junk.filter import JunkFilter, SettingsError, sender_keys
from mailsrv.junk.settings import JunkSettings, mailbox_matches
from tests.junk.corpus import ham, spam


def _snapshot(junk: JunkFilter) -> tuple[object, ...]:
    db = junk.db.db
    return (
        junk.db.totals(),
        sorted(db.execute("SELECT token, ham, spam FROM words")),
        sorted(db.execute("SELECT sender, ham, spam FROM senders")),
        sorted(db.execute("SELECT message_key, class FROM trained")),
    )


@pytest.fixture
def junk(tmp_path: Path) -> JunkFilter:
    f = JunkFilter(tmp_path / "junk.db")
    for n in range(30):
        f.train(spam(n), True)
        f.train(ham(n), False)
    return f


def test_classifies_after_training(junk: JunkFilter) -> None:
    assert junk.classify(spam(100)).junk
    verdict = junk.classify(ham(100))
    assert verdict.score is not None and verdict.score < 0.5 and not verdict.junk


def test_untrained_filter_answers_without_tokenising(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Deliveries to one account wait for each other at its filter: a filter that cannot judge yet (no ham or
    no junk trained) must say so before the costly tokenising."""
    f = JunkFilter(tmp_path / "junk.db")
    f.train(spam(1), True)  # junk only: still no verdict possible

    def no_tokens(*args: object) -> set[str]:
        raise AssertionError("tokenised a message for a filter that cannot judge")

    monkeypatch.setattr("mailsrv.junk.filter.message_tokens", no_tokens)
    verdict = f.classify(spam(2))
    assert verdict.score is None and not verdict.junk


def test_database_is_private(tmp_path: Path) -> None:
    JunkFilter(tmp_path / "p.db").close()
    assert (tmp_path / "p.db").stat().st_mode & 0o777 == 0o600


def test_train_then_untrain_restores_every_count(junk: JunkFilter) -> None:
    before = _snapshot(junk)
    extra = spam(500, extra="X-Note: unusual tokens zyxwv qwerty\r\n")
    assert junk.train(extra, True)
    assert _snapshot(junk) != before
    assert junk.untrain(extra)
    assert _snapshot(junk) == before
    assert not junk.untrain(extra)


def test_untrain_is_exact_after_ngram_settings_change(junk: JunkFilter) -> None:
    before = _snapshot(junk)
    message = ham(700)
    junk.train(message, False)
    junk.save_settings(JunkSettings(ngram_sizes=[1, 2, 3]))
    junk.untrain(message)
    assert _snapshot(junk) == before


def test_changing_class_retrains(junk: JunkFilter) -> None:
    message = spam(800)
    junk.train(message, False)
    assert junk.trained_as(message) == "ham"
    assert not junk.train(message, False)  # same class twice: nothing changes
    ham_total, spam_total = junk.db.totals()
    assert junk.train(message, True)
    assert junk.trained_as(message) == "spam"
    assert junk.db.totals() == (ham_total - 1, spam_total + 1)


def test_settings_validation_names_fields(tmp_path: Path) -> None:
    f = JunkFilter(tmp_path / "s.db")
    with pytest.raises(SettingsError) as e:
        f.save_settings(JunkSettings(threshold=0.2, ngram_sizes=[4], top_words=0, junk_mailboxes=["Ju*nk"]))
    fields = {field for field, _ in e.value.problems}
    assert fields == {"threshold", "ngram_sizes", "top_words", "junk_mailboxes"}
    with pytest.raises(SettingsError):
        f.save_settings(JunkSettings(junk_mailboxes=["Junk"], notjunk_mailboxes=["junk"]))
    f.save_settings(JunkSettings(threshold=0.8, action="reject"))
    assert f.settings().threshold == 0.8 and f.settings().action == "reject"


def test_ignored_words_are_not_evidence(junk: JunkFilter) -> None:
    message = spam(900)
    assert any(e.token == "viagra" for e in junk.classify(message).evidence)
    settings = JunkSettings(ignored_words=["Viagra"])
    assert all(e.token != "viagra" for e in junk.classify(message, settings).evidence)


AR = (
    b"Authentication-Results: mail.example.org; spf=pass smtp.mailfrom=news@lists.example.com;\r\n"
    b"\tdkim=pass header.d=example.com header.s=s1; dmarc=pass header.from=example.com\r\n"
)


def test_sender_keys_need_a_pass_aligned_with_from() -> None:
    raw = AR + b"From: News <news@lists.example.com>\r\n\r\nhi\r\n"
    # The first passing identity aligned with the From: domain (here SPF for lists.example.com).
    assert sender_keys(raw) == ["domain:lists.example.com", "address:news@lists.example.com"]
    assert sender_keys(AR + b"From: x@other.example\r\n\r\n") == []
    assert sender_keys(b"From: news@example.com\r\n\r\nno results\r\n") == []
    failing = b"Authentication-Results: h; spf=fail smtp.mailfrom=example.com; dkim=none\r\nFrom: a@example.com\r\n\r\n"
    assert sender_keys(failing) == []


def test_known_good_sender_after_ham(junk: JunkFilter) -> None:
    message = AR + spam(1, sender="news@lists.example.com")
    assert not junk.known_good_sender(message)
    junk.train(AR + ham(2, sender="news@lists.example.com"), False)
    assert junk.known_good_sender(message)
    junk.untrain(AR + ham(2, sender="news@lists.example.com"))
    assert not junk.known_good_sender(message)


def test_mailbox_patterns() -> None:
    assert mailbox_matches("inbox", ["INBOX"])
    assert mailbox_matches("Archive/2026", ["Archive/*"])
    assert not mailbox_matches("Archived", ["Archive/*"])
    assert not mailbox_matches("junk", ["Junk"])


def test_one_off_tokens_are_pruned_without_changing_verdicts(junk: JunkFilter) -> None:
    probe = spam(1000)
    before = junk.classify(probe)
    words = junk.db.word_count()
    assert junk.prune(limit=words) == 0  # within the limit: nothing dropped
    dropped = junk.prune(limit=0)
    assert dropped > 0 and junk.db.word_count() == words - dropped
    assert junk.db.db.execute("SELECT count(*) FROM words WHERE ham + spam <= 1").fetchone()[0] == 0
    # One-off tokens were never evidence at rare_word_cutoff 2: the verdict is the same.
    assert junk.classify(probe) == before
    # Untraining after a prune leaves no negative count behind.
    assert junk.untrain(spam(3))
    assert junk.db.db.execute("SELECT count(*) FROM words WHERE ham < 0 OR spam < 0").fetchone()[0] == 0
