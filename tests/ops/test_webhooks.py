"""mailsrv/ops/webhooks.py (settings, validation, fromid addresses) and mailsrv/ops/incoming.py:
a delivery to an account with webhooks writes its events: an incoming webhook body, or, for a
DSN or a message to a fromid address, outgoing events matched to the queued message (with
Suppressing for a hard failure) or "unrecognized"."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import maybeDeferred

from mailsrv.address import Address
from mailsrv.ops import webhooks as ops
from mailsrv.ops.delivery import Envelope, Trace, deliver, resolve_recipient
from mailsrv.ops.errors import InvalidInput, NotFound
from mailsrv.queue.dsn import DSNRecipient, make_dsn
from mailsrv.queue.interfaces import MessageMeta
from mailsrv.queue.store import SQLiteOutgoingQueue
from mailsrv.smtpclient.reply import Reply
from mailsrv.webhooks.store import WebhookStore
from tests.ops.fakes import make_server, result_of


def inline(f: Any, *args: Any) -> Any:
    return maybeDeferred(f, *args)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Any]:
    s = make_server(tmp_path)
    s.queue = SQLiteOutgoingQueue(tmp_path, run_fsync=inline, run_files=inline)
    s.webhooks = WebhookStore(tmp_path, run_fsync=inline)
    yield s
    s.queue.close()
    s.webhooks.close()


def test_settings_and_validation(server: Any) -> None:
    s = result_of(
        ops.outgoing_webhook_save(
            server,
            ops.OutgoingWebhookSave(account="alice", url="https://hooks.example/x", events=["failed", "delivered"]),
        )
    )
    assert (s.outgoing_url, s.outgoing_events, s.has_secret) == (
        "https://hooks.example/x",
        ["failed", "delivered"],
        False,
    )
    assert server.webhooks.wants_outgoing("alice", "failed") and not server.webhooks.wants_outgoing("alice", "delayed")
    secret = result_of(ops.webhook_secret_rotate(server, ops.WebhookAccount(account="alice"))).secret
    assert secret.startswith("whsec_") and ops.webhook_settings(server, ops.WebhookAccount(account="alice")).has_secret
    assert result_of(ops.webhook_secret_rotate(server, ops.WebhookAccount(account="alice"))).secret != secret
    for bad, field in (
        (ops.OutgoingWebhookSave(account="alice", url="ftp://x.example/"), "url"),
        (ops.OutgoingWebhookSave(account="alice", url="https://x.example/", events=["bounced"]), "events"),
        (ops.OutgoingWebhookSave(account="alice", url="https://x.example/", authorization="a\r\nb"), "authorization"),
    ):
        error = result_of(ops.outgoing_webhook_save(server, bad))
        assert isinstance(error, InvalidInput) and error.field == field
    assert isinstance(result_of(ops.incoming_webhook_save(server, ops.IncomingWebhookSave(account="nobody"))), NotFound)
    # An empty URL disables.
    result_of(ops.outgoing_webhook_save(server, ops.OutgoingWebhookSave(account="alice")))
    assert not server.webhooks.has_outgoing("alice")


def test_fromid_addresses(server: Any) -> None:
    result = ops.fromid(server, ops.FromIDAddresses(account="alice", addresses=["alice@example.org"]))
    assert result.addresses == ["alice@example.org"]
    assert server.dynamic.account_by_name("alice").fromid_login_addresses == (Address.parse("alice@example.org"),)
    with pytest.raises(InvalidInput):
        ops.fromid(server, ops.FromIDAddresses(account="alice", addresses=["bob@example.org"]))
    assert ops.fromid(server, ops.FromIDAddresses(account="alice", addresses=[])).addresses == []


def _inbound(server: Any, rcpt: str, data: bytes, mail_from: str | None = None) -> None:
    envelope = Envelope(
        mail_from=Address.parse(mail_from) if mail_from else None, trace=Trace(helo="mx.remote", remote_ip="192.0.2.7")
    )
    envelope.recipients.append(result_of(resolve_recipient(server, envelope, Address.parse(rcpt))))
    result = result_of(deliver(server, envelope, data))
    assert not isinstance(result, Exception), result


def _events(server: Any) -> list[Any]:
    return result_of(server.queue.events_after(0, 100))


def test_incoming_webhook_event(server: Any) -> None:
    result_of(ops.incoming_webhook_save(server, ops.IncomingWebhookSave(account="alice", url="https://h.example/")))
    _inbound(
        server, "alice@example.org", b"From: x@remote.example\r\nSubject: hello\r\n\r\nbody\r\n", "x@remote.example"
    )
    _inbound(server, "bob@example.org", b"Subject: not for a webhook\r\n\r\nbody\r\n", "x@remote.example")
    [event] = _events(server)
    assert (event.kind, event.account) == ("incoming", "alice")
    body = json.loads(event.payload)
    assert body["Subject"] == "hello" and body["Text"] == "body\r\n".replace("\r\n", "\n")
    meta = body["Meta"]
    assert (meta["MailFrom"], meta["RcptTo"], meta["RemoteIP"], meta["MailboxName"]) == (
        "x@remote.example",
        "alice@example.org",
        "192.0.2.7",
        "Inbox",
    )


def test_messages_are_parsed_in_the_files_pool(server: Any) -> None:
    """The webhook body and the DSN check parse the message: off the reactor thread, in the files pool."""
    from mailsrv.pools import Pools

    parsed: list[str] = []

    def files(f: Any, *args: Any) -> Any:
        parsed.append(f.__name__)
        return maybeDeferred(f, *args)

    server.pools = Pools(fsync=inline, files=files, dns=inline, hashing=inline)
    result_of(ops.incoming_webhook_save(server, ops.IncomingWebhookSave(account="alice", url="https://h.example/")))
    result_of(ops.outgoing_webhook_save(server, ops.OutgoingWebhookSave(account="alice", url="https://h.example/")))
    _inbound(server, "alice@example.org", b"From: x@remote.example\r\nSubject: hi\r\n\r\nbody\r\n", "x@remote.example")
    assert parsed == ["parse_dsn", "_incoming_body"]
    [event] = _events(server)
    assert json.loads(event.payload)["Subject"] == "hi"


def _queued_with_fromid(server: Any, fromid: str) -> int:
    return result_of(
        server.queue.enqueue(
            Address.parse(f"alice+{fromid}@example.org"),
            [Address.parse("gone@remote.example")],
            b"Message-ID: <orig@example.org>\r\nSubject: Order\r\n\r\nhi\r\n",
            "alice",
            False,
            meta=MessageMeta(fromid=fromid, header_message_id="<orig@example.org>", subject="Order", extra={"A": "1"}),
        )
    )


FROMID = "AAAAAAAAAAAAAAAAAAAAAA"


def _dsn(rcpt: str, action: str, reply: Reply, original: bytes) -> bytes:
    return make_dsn("mx.remote.example", "x", original, [DSNRecipient(rcpt, action, reply, "mx.remote.example")], 0.0)  # type: ignore[arg-type]


def test_dsn_to_a_fromid_address_becomes_an_outgoing_event(server: Any) -> None:
    result_of(ops.outgoing_webhook_save(server, ops.OutgoingWebhookSave(account="alice", url="https://h.example/")))
    result_of(ops.incoming_webhook_save(server, ops.IncomingWebhookSave(account="alice", url="https://h.example/")))
    qid = _queued_with_fromid(server, FROMID)
    dsn = _dsn("gone@remote.example", "failed", Reply(550, ("5.1.1 no such user",)), b"Subject: Order\r\n\r\nhi\r\n")
    _inbound(server, f"alice+{FROMID}@example.org", dsn)
    [event] = _events(server)  # an outgoing event only, no incoming webhook for it
    assert (event.kind, event.message_id, event.dsn, event.suppressing, event.fromid) == (
        "failed",
        qid,
        True,
        True,
        FROMID,
    )
    assert (event.recipient, event.code, event.subject, event.extra) == (
        "gone@remote.example",
        550,
        "Order",
        {"A": "1"},
    )
    assert "5.1.1" in event.reply
    [entry] = result_of(server.queue.suppressions("alice"))
    assert entry.base_address == "gone@remote.example" and entry.reason.startswith("DSN: ")


def test_dsn_matched_by_message_id_and_unrecognized_ones(server: Any) -> None:
    result_of(ops.outgoing_webhook_save(server, ops.OutgoingWebhookSave(account="alice", url="https://h.example/")))
    qid = _queued_with_fromid(server, FROMID)
    returned = b"Message-ID: <orig@example.org>\r\nSubject: Order\r\n\r\nhi\r\n"
    _inbound(
        server, "alice@example.org", _dsn("gone@remote.example", "delayed", Reply(451, ("4.2.0 later",)), returned)
    )
    unknown = b"Message-ID: <never@example.org>\r\n\r\nhi\r\n"
    _inbound(server, "alice@example.org", _dsn("gone@remote.example", "failed", Reply(554, ("5.0.0 no",)), unknown))
    # A message that is no DSN, to a fromid address nothing was sent with.
    _inbound(server, f"alice+{'B' * 22}@example.org", b"Subject: Re: Order\r\n\r\nthanks\r\n", "x@remote.example")
    # Plain mail to an account with only an outgoing webhook: nothing.
    _inbound(server, "alice@example.org", b"Subject: hi\r\n\r\nhi\r\n", "x@remote.example")
    events = _events(server)
    assert [(e.kind, e.message_id, e.dsn) for e in events] == [
        ("delayed", qid, True),
        ("unrecognized", 0, True),
        ("unrecognized", 0, False),
    ]
