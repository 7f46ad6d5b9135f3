"""mailsrv/ops/delivery.py on its own: recipient resolution, the decision point, durable
delivery and DSN hand-off, with the real dynamic configuration and in-memory stores and queue.
Every refusal is a typed error (no reply codes here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mailsrv.address import Address
from mailsrv.auth.interfaces import TemporaryAuthFailure
from mailsrv.dsnparams import RecipientDSN
from mailsrv.ops import delivery
from mailsrv.ops.delivery import Decision, DecisionInput, Envelope, Recipient, Trace, deliver, resolve_recipient
from mailsrv.ops.errors import (
    DirectoryUnavailable,
    MailboxFull,
    MembersOnly,
    RelayDenied,
    TemporaryFailure,
    UnknownRecipient,
)
from mailsrv.ops.errors import StoreUnavailable as OpsStoreUnavailable
from mailsrv.rules import Ruleset
from mailsrv.store.interfaces import StoreError, StoreUnavailable
from tests.ops.fakes import FakeStore, make_server, result_of

MESSAGE = b"From: <x@example.net>\r\nSubject: hello\r\n\r\nbody\r\n"


def _envelope(sender: str | None = "x@elsewhere.example", account: str | None = None) -> Envelope:
    return Envelope(
        mail_from=Address.parse(sender) if sender else None,
        trace=Trace(helo="h", remote_ip="192.0.2.1", protocol="ESMTPS"),
        account=account,
        submission=account is not None,
    )


def _resolve(server: Any, envelope: Envelope, address: str) -> Any:
    return result_of(resolve_recipient(server, envelope, Address.parse(address)))


def _add(server: Any, envelope: Envelope, *addresses: str) -> Envelope:
    for address in addresses:
        rcpt = _resolve(server, envelope, address)
        assert isinstance(rcpt, Recipient), rcpt
        envelope.recipients.append(rcpt)
    return envelope


# --- resolve_recipient ---------------------------------------------------------------------------------------


def test_account_alias_and_catchall(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    env = _envelope()
    assert _resolve(server, env, "alice@example.org").accounts == ("alice",)
    assert _resolve(server, env, "Alice+tag@EXAMPLE.org").accounts == ("alice",)
    public = _resolve(server, env, "public@example.org")
    assert public.accounts == ("alice", "bob") and public.alias is not None


def test_refusals_are_typed(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    env = _envelope()
    assert isinstance(_resolve(server, env, "nobody@example.org"), UnknownRecipient)
    assert isinstance(_resolve(server, env, "someone@elsewhere.example"), RelayDenied)
    assert isinstance(_resolve(server, env, "team@example.org"), MembersOnly)
    assert isinstance(_resolve(server, env, "outsiders@example.org"), UnknownRecipient)  # no local member


def test_members_may_post_to_their_list(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    assert _resolve(server, _envelope("bob@example.org"), "team@example.org").accounts == ("alice", "bob")
    assert _resolve(server, _envelope(None, account="alice"), "team@example.org").accounts == ("alice", "bob")


def test_submission_may_reach_remote_recipients(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    rcpt = _resolve(server, _envelope("alice@example.org", account="alice"), "someone@elsewhere.example")
    assert rcpt.remote and rcpt.accounts == ()


def test_full_mailbox_is_a_temporary_refusal(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    server.stores.by_name["bob"] = FakeStore(limit=0)
    error = _resolve(server, _envelope(), "bob@example.org")
    assert isinstance(error, MailboxFull) and error.temporary


def test_directory_failure_is_temporary(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    server.config.ldap = object()

    async def unavailable(address: Address) -> str | None:
        raise TemporaryAuthFailure("ldap down")

    server.accounts = type("P", (), {"account_for_address": staticmethod(unavailable)})()
    assert isinstance(_resolve(server, _envelope(), "nobody@example.org"), DirectoryUnavailable)


# --- postmaster and abuse (RFC 5321 §4.5.1, issue 17 item 11) -------------------------------------------------


@pytest.mark.parametrize("localpart", ["postmaster", "POSTMASTER", "abuse", "Abuse"])
def test_role_addresses_reach_the_postmaster_account_at_every_domain(tmp_path: Path, localpart: str) -> None:
    server = make_server(tmp_path, postmaster_account="bob")
    for domain in ("example.org", "example.net", "mail.example.org"):
        assert _resolve(server, _envelope(), f"{localpart}@{domain}").accounts == ("bob",)


def test_role_addresses_without_configured_account_go_to_the_domains_first_account(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    assert _resolve(server, _envelope(), "postmaster@example.net").accounts == ("carol",)
    assert _resolve(server, _envelope(), "abuse@example.org").accounts == ("alice",)


def test_an_explicit_postmaster_address_wins(tmp_path: Path) -> None:
    dynamic = make_server(tmp_path).dynamic
    dynamic.add_alias("postmaster@example.org", ["carol@example.net"], post_public=True)
    server = make_server(tmp_path, dynamic=(tmp_path / "dynamic.toml").read_text(), postmaster_account="bob")
    assert _resolve(server, _envelope(), "postmaster@example.org").accounts == ("carol",)
    assert _resolve(server, _envelope(), "postmaster@example.net").accounts == ("bob",)


def test_bare_postmaster_means_the_host_name(tmp_path: Path) -> None:
    server = make_server(tmp_path, postmaster_account="bob")
    address = delivery.postmaster_address(server)
    assert str(address) == "postmaster@mail.example.org"
    assert _resolve(server, _envelope(), str(address)).accounts == ("bob",)


def test_other_localparts_at_the_host_name_are_still_relaying(tmp_path: Path) -> None:
    server = make_server(tmp_path, postmaster_account="bob")
    assert isinstance(_resolve(server, _envelope(), "root@mail.example.org"), RelayDenied)


# --- deliver ---------------------------------------------------------------------------------------------------


def test_one_copy_per_account_with_trace_fields(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    env = _add(server, _envelope(), "alice@example.org", "public@example.org", "alice+x@example.org")
    result = result_of(deliver(server, env, MESSAGE))
    assert sorted(result.delivered) == ["alice", "bob"]
    [(mailbox, copy)] = server.stores.by_name["alice"].stored
    assert mailbox == "INBOX"
    # The direct recipient's copy: its Delivered-To names alice's own address.
    assert copy.startswith(b"Delivered-To: alice@example.org\r\nReceived: from h ([192.0.2.1])\r\n")
    assert f"with ESMTPS id {result.queue_id}".encode() in copy
    assert copy.endswith(MESSAGE)


def test_a_list_member_who_sends_gets_no_copy(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    env = _add(server, _envelope("bob@example.org"), "team@example.org")
    assert result_of(deliver(server, env, MESSAGE)).delivered == ["alice"]


def test_store_failure_is_temporary_even_when_another_copy_was_stored(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    server.stores.by_name["bob"] = FakeStore(error=StoreError("disk full"))
    env = _add(server, _envelope(), "alice@example.org", "bob@example.org")
    assert isinstance(result_of(deliver(server, env, MESSAGE)), TemporaryFailure)
    assert len(server.stores.by_name["alice"].stored) == 1


def test_a_retry_after_a_partial_failure_does_not_store_a_copy_twice(tmp_path: Path) -> None:
    MESSAGE = b"Message-ID: <1@example.net>\r\n" + globals()["MESSAGE"]
    server = make_server(tmp_path)
    server.stores.by_name["bob"] = FakeStore(error=StoreUnavailable("disk full"))
    env = _add(server, _envelope(), "alice@example.org", "bob@example.org")
    failed = result_of(deliver(server, env, MESSAGE))
    assert isinstance(failed, TemporaryFailure) and isinstance(failed, OpsStoreUnavailable)
    server.stores.by_name["bob"].error = None
    # The sender retries the whole transaction: alice already has it, bob gets it now.
    retry = _add(server, _envelope(), "alice@example.org", "bob@example.org")
    assert sorted(result_of(deliver(server, retry, MESSAGE)).delivered) == ["alice", "bob"]
    assert len(server.stores.by_name["alice"].stored) == 1
    assert len(server.stores.by_name["bob"].stored) == 1
    # Another message, or the same one from another sender or to another recipient, is new.
    result_of(deliver(server, _add(server, _envelope(), "alice@example.org"), MESSAGE + b"more\r\n"))
    result_of(deliver(server, _add(server, _envelope("y@elsewhere.example"), "alice@example.org"), MESSAGE))
    result_of(deliver(server, _add(server, _envelope(), "alice+x@example.org"), MESSAGE))
    assert len(server.stores.by_name["alice"].stored) == 4


def test_a_message_without_message_id_sent_twice_is_two_messages(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    for _ in range(2):
        result_of(deliver(server, _add(server, _envelope(), "alice@example.org"), MESSAGE))
    assert len(server.stores.by_name["alice"].stored) == 2
    assert server.stores.by_name["alice"].delivery_ids == []


def test_delivery_ids_depend_on_sender_recipient_and_bytes_only() -> None:
    import hashlib

    digest = hashlib.sha256(MESSAGE).digest()
    a = Address.parse("alice@example.org")
    one = delivery.delivery_id(_envelope(), a, digest)
    assert one == delivery.delivery_id(_envelope(), a, digest)
    assert one != delivery.delivery_id(_envelope(None), a, digest)
    assert one != delivery.delivery_id(_envelope(), Address.parse("bob@example.org"), digest)
    assert one != delivery.delivery_id(_envelope(), a, hashlib.sha256(b"x").digest())


def test_store_unavailable_when_resolving_is_a_temporary_refusal(tmp_path: Path) -> None:
    server = make_server(tmp_path)

    def broken(name: str) -> Any:
        raise StoreUnavailable("index locked")

    server.stores.open = broken
    server.stores.by_name["alice"] = FakeStore(limit=10**6)
    error = _resolve(server, _envelope(), "alice@example.org")
    assert isinstance(error, OpsStoreUnavailable)


def test_direct_recipient_without_room_refuses_before_anything_is_stored(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    env = _add(server, _envelope(), "alice@example.org", "bob@example.org")
    server.stores.by_name["bob"] = FakeStore(limit=10)
    assert isinstance(result_of(deliver(server, env, MESSAGE)), MailboxFull)
    assert server.stores.by_name["alice"].stored == []


def test_list_member_without_room_is_skipped(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    env = _add(server, _envelope(), "public@example.org")
    server.stores.by_name["bob"] = FakeStore(limit=10)
    result = result_of(deliver(server, env, MESSAGE))
    assert result.delivered == ["alice"] and result.over_quota == ["bob"]


def test_list_with_no_member_with_room_refuses(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    env = _add(server, _envelope(), "public@example.org")
    server.stores.by_name["alice"] = FakeStore(limit=10)
    server.stores.by_name["bob"] = FakeStore(limit=10)
    assert isinstance(result_of(deliver(server, env, MESSAGE)), MailboxFull)


def test_remote_recipients_are_queued_with_a_received_field(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    env = _add(server, _envelope("alice@example.org", account="alice"), "x@elsewhere.example", "bob@example.org")
    result = result_of(deliver(server, env, MESSAGE))
    assert result.delivered == ["bob"] and result.queued == 1
    [queued] = server.queue.queued
    assert [str(a) for a in queued.recipients] == ["x@elsewhere.example"] and queued.account == "alice"
    assert queued.data.startswith(b"Received: ") and b"for <" not in queued.data


# --- the decision point ----------------------------------------------------------------------------------------


def test_ruleset_mailbox_and_fallback_to_inbox_when_it_is_gone(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    server.rules.rulesets["alice"] = (Ruleset.from_dict({"headers": [["^subject$", "hello"]], "mailbox": "Lists"}),)
    env = _add(server, _envelope(), "alice@example.org")
    assert result_of(deliver(server, env, MESSAGE)).mailboxes == {"alice": "Lists"}
    server.stores.by_name["alice"].missing_mailboxes.add("Lists")
    env = _add(server, _envelope(), "alice@example.org")
    assert result_of(deliver(server, env, MESSAGE)).mailboxes == {"alice": "INBOX"}


def test_quarantine_goes_to_junk_unless_a_ruleset_accepts_regardless(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    env = _envelope()
    env.quarantine = True
    decision = result_of(delivery.decide(server, env, "alice", MESSAGE))
    assert (decision.mailbox, decision.reason) == ("Junk", "dmarc")
    rule = Ruleset.from_dict({"headers": [["^subject$", "hello"]], "accept_regardless": True})
    server.rules.rulesets["alice"] = (rule,)
    decision = result_of(delivery.decide(server, env, "alice", MESSAGE))
    assert decision.mailbox == "INBOX" and decision.accept_regardless


def test_deciders_run_in_order_and_a_failing_one_changes_nothing(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    seen: list[DecisionInput] = []

    async def junk(subject: DecisionInput, decision: Decision) -> Decision:
        seen.append(subject)
        return Decision(mailbox="Junk", reason="junk")

    async def broken(subject: DecisionInput, decision: Decision) -> Decision:
        raise RuntimeError("filter bug")

    server.delivery_deciders.extend([junk, broken])
    env = _add(server, _envelope(), "alice@example.org")
    result = result_of(deliver(server, env, MESSAGE))
    assert result.mailboxes == {"alice": "Junk"}
    [subject] = seen
    assert subject.account == "alice" and ("Subject", "hello") in subject.headers
    assert subject.message.startswith(b"Delivered-To: alice@example.org\r\n")


# --- DSNs ------------------------------------------------------------------------------------------------------


def test_success_dsn_goes_to_a_local_sender_after_delivery(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    env = _add(server, _envelope("carol@example.net"), "alice@example.org")
    env.recipients[0].dsn = RecipientDSN(notify=("SUCCESS",))
    result_of(deliver(server, env, MESSAGE))
    assert "carol" not in server.stores.by_name  # an unverified sender gets none (issue 17 item 5)
    env = _add(server, _envelope("carol@example.net"), "alice@example.org")
    env.recipients[0].dsn = RecipientDSN(notify=("SUCCESS",))
    env.verified_domains = frozenset({"example.net"})
    result_of(deliver(server, env, MESSAGE))
    [(mailbox, dsn)] = server.stores.by_name["carol"].stored
    assert mailbox == "INBOX" and b"Action: delivered" in dsn


def test_success_dsn_failure_does_not_unaccept(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    server.stores.by_name["carol"] = FakeStore(error=StoreError("broken"))
    env = _add(server, _envelope("carol@example.net"), "alice@example.org")
    env.recipients[0].dsn = RecipientDSN(notify=("SUCCESS",))
    env.verified_domains = frozenset({"example.net"})
    assert result_of(deliver(server, env, MESSAGE)).delivered == ["alice"]


def test_deliver_dsn_to_a_remote_sender_queues_it_with_the_null_path(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    result_of(delivery.deliver_dsn(server, "x@elsewhere.example", b"dsn"))
    [queued] = server.queue.queued
    assert queued.mail_from is None and [str(a) for a in queued.recipients] == ["x@elsewhere.example"]
    assert result_of(delivery.deliver_dsn(server, "not an address", b"dsn")) is None  # dropped, logged


def test_a_dsn_handed_over_again_is_stored_once(tmp_path: Path) -> None:
    """DSNs are idempotent deliveries too: the same report rendered again (another Date, Message-ID,
    attempt time and MIME boundary) has the same delivery id; another report does not."""
    from mailsrv.queue.dsn import DSNRecipient, make_dsn
    from mailsrv.smtpclient.reply import Reply

    server = make_server(tmp_path)
    original = b"Message-ID: <9@example.org>\r\nSubject: hi\r\n\r\nbody\r\n"

    def report(now: float, address: str = "x@remote.example") -> bytes:
        failed = DSNRecipient(address, "failed", Reply(550, ("5.1.1 no such user",)), "mx.remote.example", now)
        return make_dsn("mail.example.org", "alice@example.org", original, [failed], 1000.0, now)

    first, again = report(2000.0), report(2600.0)
    assert first != again
    assert delivery.dsn_delivery_id(first) == delivery.dsn_delivery_id(again)
    result_of(delivery.deliver_dsn(server, "alice@example.org", first))
    result_of(delivery.deliver_dsn(server, "alice@example.org", again))
    assert len(server.stores.by_name["alice"].stored) == 1
    result_of(delivery.deliver_dsn(server, "alice@example.org", report(2000.0, "y@remote.example")))
    assert len(server.stores.by_name["alice"].stored) == 2


def test_a_retried_message_gets_one_success_dsn(tmp_path: Path) -> None:
    message = b"Message-ID: <2@example.net>\r\n" + MESSAGE
    server = make_server(tmp_path)
    for _ in range(2):  # the sender did not see our 250 and sends again
        env = _add(server, _envelope("carol@example.net"), "alice@example.org")
        env.recipients[0].dsn = RecipientDSN(notify=("SUCCESS",))
        env.verified_domains = frozenset({"example.net"})
        result_of(deliver(server, env, message))
    assert len(server.stores.by_name["alice"].stored) == 1
    assert len(server.stores.by_name["carol"].stored) == 1


@pytest.mark.parametrize(
    ("message", "handed_over"),
    [
        (MESSAGE, True),
        (b" folded first\r\nSubject: x\r\n\r\nbody\r\n", False),  # a continuation before any field
        (b"From x@example.net Sun Nov 29 01:00:00 2026\r\nSubject: x\r\n\r\nb\r\n", False),  # an mbox line
        (b"\r\nbody only\r\n", False),
        (b"no header at all\r\n", True),
        (b"Subject: caf\xc3\xa9\r\n =?utf-8?q?x?=\r\n\r\n", True),
    ],
)
def test_the_store_gets_the_copys_header_fields_exactly_or_none(
    tmp_path: Path, message: bytes, handed_over: bool
) -> None:
    server = make_server(tmp_path)
    handed: list[object] = []
    store = server.stores.open("alice")
    append = store.append

    def spy(mailbox: str, data: bytes, **kw: Any) -> Any:
        handed.append(kw.get("header_fields"))
        return append(mailbox, data, **kw)  # FakeStore checks given fields against its own parse

    store.append = spy
    env = _add(server, _envelope(), "alice@example.org")
    result_of(deliver(server, env, message, b"Authentication-Results: mail.example.org;\r\n\tspf=none\r\n"))
    [(_, stored)] = store.stored
    assert stored.endswith(message)
    [fields] = handed
    assert (fields is not None) == handed_over
