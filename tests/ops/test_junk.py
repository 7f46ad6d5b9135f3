"""mailsrv.ops.junk on its own (a real Server on a temp dir, inline thread pool, no sockets): the operations and
their errors, the delivery verdict (Junk, reject with a kept copy, known senders, rulesets that accept regardless)
and training from ops.mail moves and $Junk/$NotJunk flags."""

from __future__ import annotations

import base64
import datetime
import shutil
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import msgspec
import pytest
from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from mailsrv.address import Address
from mailsrv.ops import accounts, domains, junk, mail
from mailsrv.ops.delivery import Decision, DecisionInput, Envelope, Trace, deliver, header_fields, resolve_recipient
from mailsrv.ops.errors import InvalidInput, LimitExceeded, NotFound, TemporaryFailure
from mailsrv.server import Server
from tests.junk.corpus import ham, spam
from tests.ops.world import make_server, result


def inline(test: Callable[[Any], Coroutine[Any, Any, None]]) -> Callable[[Any], Deferred[None]]:
    """A trial test method written as a coroutine."""

    def run(self: Any) -> Deferred[None]:
        return Deferred.fromCoroutine(test(self))

    run.__name__ = test.__name__
    return run


def _junk_field(raw: bytes) -> bytes:
    """Our X-Mailsrv-Junk field, which stands right below the Delivered-To and Received fields."""
    lines = raw.split(b"\r\n")
    assert lines[0].startswith(b"Delivered-To: ") and lines[1].startswith(b"Received: "), lines[:3]
    return next(line for line in lines if line.startswith(b"X-Mailsrv-Junk: "))


def _b64(*messages: bytes) -> list[str]:
    return [base64.b64encode(m).decode() for m in messages]


def _trained(server: Server) -> Server:
    result(junk.train(server, junk.MessagesRequest(account="alice", messages=_b64(*(spam(n) for n in range(30))))))
    result(
        junk.train(
            server, junk.MessagesRequest(account="alice", messages=_b64(*(ham(n) for n in range(30))), junk=False)
        )
    )
    return server


def _settings(server: Server, **changes: object) -> junk.JunkSettings:
    return result(junk.configure(server, junk.ConfigureJunk(account="alice", settings=dict(changes))))


def test_settings_defaults_and_changes(server: Server) -> None:
    assert result(junk.get_settings(server, junk.AccountJunk(account="alice"))) == junk.JunkSettings()
    changed = _settings(server, threshold=0.9, action="reject")
    assert changed.threshold == 0.9 and changed.action == "reject"
    assert result(junk.get_settings(server, junk.AccountJunk(account="alice"))).threshold == 0.9


@pytest.mark.parametrize(
    ("changes", "field"),
    [({"threshold": 2}, "threshold"), ({"top_words": 1}, "top_words"), ({"ngram_sizes": [5]}, "ngram_sizes")],
)
def test_settings_out_of_limits_name_the_field(server: Server, changes: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as e:
        _settings(server, **changes)
    assert e.value.field == field


def test_settings_wrong_type_or_unknown_field(server: Server) -> None:
    with pytest.raises(InvalidInput, match="threshold"):
        _settings(server, threshold="high")
    with pytest.raises(InvalidInput, match="colour"):
        _settings(server, colour="red")


def test_unknown_account(server: Server) -> None:
    with pytest.raises(NotFound):
        junk.get_settings(server, junk.AccountJunk(account="nobody"))


def test_train_check_untrain(server: Server) -> None:
    _trained(server)
    message = spam(99)
    check = result(junk.check(server, junk.CheckRequest(account="alice", message=_b64(message)[0])))
    assert check.junk and check.score is not None and check.score >= check.threshold
    assert check.words and check.trained_as is None
    assert result(junk.train(server, junk.MessagesRequest(account="alice", messages=_b64(message)))).changed == 1
    again = result(junk.train(server, junk.MessagesRequest(account="alice", messages=_b64(message))))
    assert (again.changed, again.unchanged) == (0, 1)
    assert result(junk.untrain(server, junk.MessagesRequest(account="alice", messages=_b64(message)))).changed == 1
    stats = result(junk.stats(server, junk.AccountJunk(account="alice")))
    assert (stats.ham_messages, stats.spam_messages) == (30, 30) and stats.words > 0


def test_bad_messages_refused(server: Server) -> None:
    with pytest.raises(InvalidInput):
        junk.train(server, junk.MessagesRequest(account="alice", messages=["not base64!"]))
    with pytest.raises(LimitExceeded):
        junk.train(server, junk.MessagesRequest(account="alice", messages=["AA=="] * (junk.MAX_REQUEST_MESSAGES + 1)))


# --- delivery -------------------------------------------------------------------------------------------------


def _decide(server: Server, message: bytes, decision: Decision | None = None) -> Decision:
    envelope = Envelope(mail_from=Address.parse("x@example.net"), trace=Trace(helo="h", remote_ip="192.0.2.1"))
    subject = DecisionInput("alice", envelope, message, header_fields(message))
    (decider,) = [d for d in server.delivery_deciders if isinstance(d, junk.JunkDecider)]
    return result(decider(subject, decision or Decision()))


def test_junk_goes_to_junk_with_a_header(server: Server) -> None:
    _trained(server)
    decision = _decide(server, spam(200))
    assert decision.mailbox == "Junk" and not decision.rejected
    assert decision.headers.startswith(b"X-Mailsrv-Junk: score=") and b"junk=yes" in decision.headers
    decision = _decide(server, ham(200))
    assert decision.mailbox == "INBOX" and b"junk=no" in decision.headers


def test_untrained_filter_delivers_to_inbox(server: Server) -> None:
    decision = _decide(server, spam(1))
    assert decision.mailbox == "INBOX" and decision.headers == b""  # nothing to say yet


def test_untrained_filter_is_not_asked(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once the filter is known to have nothing trained, a delivery does not ask it (no thread hop)."""
    _decide(server, spam(1))  # opens the filter
    assert server.junk is not None

    def asked(*args: object) -> None:
        raise AssertionError("the untrained filter was asked")

    monkeypatch.setattr(server.junk, "read", asked)
    assert _decide(server, spam(2)) == Decision()
    _trained(server)
    monkeypatch.undo()
    assert _decide(server, spam(200)).mailbox == "Junk"


def test_accept_regardless_and_disabled_skip_the_filter(server: Server) -> None:
    _trained(server)
    assert _decide(server, spam(201), Decision(accept_regardless=True)) == Decision(accept_regardless=True)
    _settings(server, enabled=False)
    assert _decide(server, spam(201)) == Decision()


AR = b"Authentication-Results: mail.example.org; dkim=pass header.d=shop.example header.s=s\r\n"


def test_known_sender_skips_the_filter(server: Server) -> None:
    _trained(server)
    result(
        junk.train(
            server,
            junk.MessagesRequest(account="alice", messages=_b64(AR + ham(300, sender="news@shop.example")), junk=False),
        )
    )
    decision = _decide(server, AR + spam(301, sender="news@shop.example"))
    assert decision.mailbox == "INBOX" and b"skipped=known-sender" in decision.headers


class StoreBackedTests(TestCase):
    """Delivery and training through the real SQLite store, which runs on the global reactor (trial's)."""

    def setUp(self) -> None:
        tmp = Path(tempfile.mkdtemp(prefix="mailsrv-junk-"))
        self.addCleanup(shutil.rmtree, tmp, True)
        self.server = make_server(tmp)
        domains.add(self.server, domains.AddDomain(domain="example.org"))
        result(
            accounts.add(
                self.server, accounts.AddAccount(account="alice", address="alice@example.org", password="alice-secret")
            )
        )
        self.addCleanup(self.server.close)
        self.store = self.server.stores.open("alice")
        if "Junk" not in {m.name for m in self.store.mailboxes()}:
            self.store.create_mailbox("Junk", "\\Junk")

    async def _deliver(self, message: bytes) -> object:
        envelope = Envelope(mail_from=Address.parse("x@example.net"), trace=Trace(helo="h", remote_ip="192.0.2.1"))
        envelope.recipients.append(await resolve_recipient(self.server, envelope, Address.parse("alice@example.org")))
        return await deliver(self.server, envelope, message)

    async def _append(self, mailbox: str, message: bytes) -> int:
        return (await self.store.append(mailbox, message)).uid

    async def _settle(self) -> None:
        assert self.server.junk is not None
        while self.server.junk.pending:
            await self.server.junk.drain()

    def _ctx(self) -> mail.MailContext:
        return mail.MailContext(self.store, self.server.mail_hooks)

    def _trained_as(self, message: bytes) -> str | None:
        assert self.server.junk is not None
        return self.server.junk.call_sync("alice", lambda j: j.trained_as(message))

    def _id(self, name: str) -> int:
        return self.store.mailbox(name).id

    @inline
    async def test_reject_keeps_a_copy_and_fails_temporarily(self) -> None:
        _trained(self.server)
        _settings(self.server, action="reject", rejects_mailbox="Rejects")
        with self.assertRaises(TemporaryFailure) as e:
            await self._deliver(spam(400))
        self.assertNotIn("junk", e.exception.message.lower())  # says nothing about why
        rejects = self.store.mailbox("Rejects")
        self.assertEqual(rejects.messages, 1)
        (kept,) = self.store.messages(rejects.id)
        self.assertIn(b"junk=yes", _junk_field(self.store.read(kept.message_id)))
        self.assertEqual(self.store.mailbox("INBOX").messages, 0)
        # Mailing-list mail is filed, never refused.
        self.assertEqual(_decide(self.server, spam(401), Decision(mailing_list=True)).mailbox, "Junk")

    @inline
    async def test_junk_delivery_lands_in_junk_and_ham_in_inbox(self) -> None:
        _trained(self.server)
        await self._deliver(spam(450))
        await self._deliver(ham(451))
        self.assertEqual(self.store.mailbox("Junk").messages, 1)
        (info,) = self.store.messages(self._id("INBOX"))
        self.assertIn(b"junk=no", _junk_field(self.store.read(info.message_id)))

    @inline
    async def test_move_into_junk_and_back_trains_and_retrains(self) -> None:
        message = spam(600)
        uid = await self._append("INBOX", message)
        moved = await mail.move_messages(self._ctx(), self._id("INBOX"), [uid], "Junk")
        await self._settle()
        self.assertEqual(self._trained_as(message), "spam")
        await mail.move_messages(self._ctx(), self._id("Junk"), list(moved.dest_uids), "INBOX")
        await self._settle()
        self.assertEqual(self._trained_as(message), "ham")

    @inline
    async def test_keywords_train_and_removing_junk_untrains(self) -> None:
        message = ham(700)
        uid = await self._append("INBOX", message)
        inbox = self._id("INBOX")
        await mail.add_flags(self._ctx(), inbox, [uid], ["$Junk"])
        await self._settle()
        self.assertEqual(self._trained_as(message), "spam")
        await mail.add_flags(self._ctx(), inbox, [uid], ["$NotJunk"])
        await mail.remove_flags(self._ctx(), inbox, [uid], ["$Junk"])
        await self._settle()
        self.assertEqual(self._trained_as(message), "ham")
        await mail.remove_flags(self._ctx(), inbox, [uid], ["$NotJunk"])
        await mail.add_flags(self._ctx(), inbox, [uid], ["$Junk"])
        await mail.remove_flags(self._ctx(), inbox, [uid], ["$Junk"])
        await self._settle()
        self.assertIsNone(self._trained_as(message))

    @inline
    async def test_unrelated_moves_do_not_train(self) -> None:
        await self.store.create_mailbox("Projects")
        message = spam(800)
        uid = await self._append("INBOX", message)
        await mail.move_messages(self._ctx(), self._id("INBOX"), [uid], "Projects")
        await self._settle()
        self.assertIsNone(self._trained_as(message))

    @inline
    async def test_retrain_and_analyze_from_mailboxes(self) -> None:
        for n in range(20):
            await self._append("Junk", spam(n))
            await self.store.append("INBOX", ham(n), flags=["\\Seen"])
        # Not touched by the user: unread Inbox mail, and junk the filter itself filed.
        await self._append("INBOX", ham(50))
        await self._append("Junk", b"X-Mailsrv-Junk: score=0.99; junk=yes; words=x\r\n" + spam(51))
        # A keyword says more than the mailbox.
        await self.store.append("INBOX", spam(52), flags=["$Junk"])
        retrained = await junk.retrain(self.server, junk.AccountJunk(account="alice"))
        self.assertEqual((retrained.ham, retrained.spam), (20, 21))
        self.assertEqual(self._trained_as(ham(50)), None)
        self.assertEqual(self._trained_as(spam(52)), "spam")
        analysis = await junk.analyze(self.server, junk.AnalyzeRequest(account="alice", folds=5))
        self.assertEqual((analysis.ham, analysis.spam), (20, 21))
        self.assertGreater(analysis.recall, 0.8)
        self.assertEqual(analysis.false_positives, 0)
        with self.assertRaises(InvalidInput):
            await junk.analyze(self.server, junk.AnalyzeRequest(account="alice", folds=1))
        _settings(self.server, train_untouched=True)
        retrained = await junk.retrain(self.server, junk.AccountJunk(account="alice"))
        self.assertEqual((retrained.ham, retrained.spam), (21, 22))

    @inline
    async def test_rejects_older_than_the_keep_period_are_removed(self) -> None:
        _settings(self.server, rejects_keep_days=7)
        await self.store.create_mailbox("Rejects")
        now = datetime.datetime.now(datetime.UTC)
        await self.store.append("Rejects", spam(1), internal_date=now - datetime.timedelta(days=8))
        await self.store.append("Rejects", spam(2), internal_date=now - datetime.timedelta(days=6))
        self.server.reactor.advance(now.timestamp())  # type: ignore[attr-defined]
        self.assertEqual(await junk.expire_rejects(self.server), 1)
        (left,) = self.store.messages(self._id("Rejects"))
        self.assertEqual(self.store.read(left.message_id), spam(2))
        self.assertEqual(await junk.expire_rejects(self.server), 0)


def test_results_are_json_shaped(server: Server) -> None:
    _trained(server)
    check = result(junk.check(server, junk.CheckRequest(account="alice", message=_b64(spam(1))[0])))
    assert msgspec.json.decode(msgspec.json.encode(check))["junk"] is True
