"""Webhooks from the real daemon in localserve mode to a receiver written only with the
standard library (http.server + json), signatures verified with `standardwebhooks`:

- localserve failure forms give "delivered", "delayed" then "failed" (temperror expires within
  a minute), "failed" with Suppressing (550) and then "suppressed" for a variant of that
  address, and an incoming webhook for mail delivered to the account; Extra travels along;
- a receiver answering 500 gets retries with growing delays;
- a receiver that is down gets every event once it is back, across a clean restart of the
  daemon and a SIGKILL.
"""

from __future__ import annotations

import itertools
import json
import smtplib
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from tests.daemon import RunningDaemon, wait_until, write_config
from tests.webhooks.receiver import Receiver, Request


def _localserve_daemon(directory: Path) -> RunningDaemon:
    daemon = write_config(directory)
    text = daemon.config_path.read_text()
    daemon.config_path.write_text("localserve = true\n" + text)  # top-level key: before any table
    daemon.start()
    return daemon


@pytest.fixture
def daemon(tmp_path: Path) -> Any:
    running = _localserve_daemon(tmp_path / "daemon")
    try:
        yield running
    finally:
        running.kill()


def _send(daemon: RunningDaemon, to: list[str], subject: str, headers: dict[str, str] | None = None) -> None:
    msg = EmailMessage()
    msg["From"] = "alice@example.org"
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content("hello\n")
    with smtplib.SMTP("127.0.0.1", daemon.ports["submission"], timeout=30) as smtp:
        smtp.starttls(context=daemon.ssl_context())
        smtp.login("alice@example.org", "alicepass")
        smtp.send_message(msg)


def _verified(secret: str, r: Request) -> dict[str, Any]:
    headers = {k: r.headers[k] for k in ("webhook-id", "webhook-timestamp", "webhook-signature")}
    Webhook(secret).verify(r.body, headers)  # raises when the signature is wrong
    assert r.headers["x-mox-webhook-id"] == r.headers["webhook-id"]
    return json.loads(r.body)


def _outgoing(requests: list[Request]) -> list[Request]:
    return [r for r in requests if r.path == "/hook"]


def test_failure_forms_signatures_suppression_incoming_and_retries(daemon: RunningDaemon) -> None:
    with Receiver() as receiver:
        incoming_url = receiver.url.replace("/hook", "/incoming")
        daemon.cli_ok("webhook", "outgoing", "alice", receiver.url, "--authorization", "Bearer app-token")
        daemon.cli_ok("webhook", "incoming", "alice", incoming_url)
        secret = daemon.cli_ok("webhook", "rotate", "alice").strip()
        assert secret.startswith("whsec_")

        _send(daemon, ["ok@remote.example", "user550@remote.example"], "first", {"X-Mox-Extra-Order": "17"})
        requests = receiver.wait_for(lambda rs: len(_outgoing(rs)) >= 2, what="delivered and failed")
        events = {_verified(secret, r)["Event"]: _verified(secret, r) for r in _outgoing(requests)}
        assert set(events) == {"delivered", "failed"}
        assert events["failed"]["Suppressing"] is True and events["failed"]["SMTPCode"] == 550
        assert events["failed"]["SMTPEnhancedCode"] == "5.1.1"
        for body in events.values():
            assert body["Subject"] == "first" and body["Extra"] == {"Order": "17"} and body["MessageID"].startswith("<")
        assert all(r.headers["authorization"] == "Bearer app-token" for r in _outgoing(requests))
        assert "user550@remote.example" in daemon.cli_ok("suppression", "list", "alice")

        # A variant of the suppressed address: no attempt, "suppressed".
        _send(daemon, ["User550+news@remote.example"], "second")
        requests = receiver.wait_for(lambda rs: len(_outgoing(rs)) >= 3, what="suppressed")
        body = _verified(secret, _outgoing(requests)[-1])
        assert body["Event"] == "suppressed" and body["Subject"] == "second"

        # temperror: delayed (retried within seconds), then failed once it expires (30 s).
        _send(daemon, ["temperror@remote.example"], "third")
        requests = receiver.wait_for(
            lambda rs: any(
                json.loads(r.body).get("Subject") == "third" and json.loads(r.body)["Event"] == "failed"
                for r in _outgoing(rs)
            ),
            timeout=90,
            what="temperror failed",
        )
        third = [_verified(secret, r) for r in _outgoing(requests) if json.loads(r.body)["Subject"] == "third"]
        assert third[0]["Event"] == "delayed" and third[-1]["Event"] == "failed"
        assert third[0]["SMTPCode"] == 451

        # Mail delivered to alice (from bob) raises the incoming webhook.
        msg = EmailMessage()
        msg["From"] = "bob@example.org"
        msg["To"] = "alice@example.org"
        msg["Subject"] = "Re: first"
        msg.set_content("thanks\n")
        with smtplib.SMTP("127.0.0.1", daemon.ports["submission"], timeout=30) as smtp:
            smtp.starttls(context=daemon.ssl_context())
            smtp.login("bob@example.org", "bobpass")
            smtp.send_message(msg)
        requests = receiver.wait_for(lambda rs: any(r.path == "/incoming" for r in rs), what="incoming webhook")
        [incoming] = [r for r in requests if r.path == "/incoming"]
        body = _verified(secret, incoming)
        assert body["Subject"] == "Re: first" and body["Text"] == "thanks\n"
        assert body["From"] == [{"Name": "", "Address": "bob@example.org"}]
        assert body["Meta"]["RcptTo"] == "alice@example.org" and body["Meta"]["MsgID"] > 0
        assert "authorization" not in incoming.headers

        # A receiver answering 500: retries with growing delays (localserve: 1, 2, 4 s).
        receiver.status = 500
        before = len(_outgoing(receiver.snapshot()))
        _send(daemon, ["ok2@remote.example"], "fourth")
        requests = receiver.wait_for(lambda rs: len(_outgoing(rs)) >= before + 4, what="retries")
        tries = _outgoing(requests)[before:]
        assert [r.headers["x-mox-webhook-attempt"] for r in tries[:4]] == ["1", "2", "3", "4"]
        gaps = [b.time - a.time for a, b in itertools.pairwise(tries[:4])]
        assert gaps[0] < gaps[1] < gaps[2], gaps
        receiver.status = 200
        receiver.wait_for(lambda rs: rs[-1].status == 200 and rs[-1].path == "/hook", what="delivery after 500s")
    assert "Traceback" not in daemon.stop()


def _queued_hooks(daemon: RunningDaemon) -> list[Any]:
    return json.loads(daemon.cli_ok("webhook", "list", "--json"))


def test_receiver_down_gets_everything_across_restart_and_sigkill(daemon: RunningDaemon) -> None:
    receiver = Receiver()
    receiver.stop()
    try:
        daemon.cli_ok("webhook", "outgoing", "alice", receiver.url)
        _send(daemon, ["a@remote.example", "b@remote.example", "permerror@remote.example"], "m1")
        _send(daemon, ["c@remote.example"], "m2")
        wait_until(
            lambda: len(_queued_hooks(daemon)) == 4 and all(h["attempts"] >= 1 for h in _queued_hooks(daemon)),
            60,
            "attempts",
        )
        daemon.stop()
        daemon.start()
        _send(daemon, ["d@remote.example"], "m3")
        wait_until(lambda: len(_queued_hooks(daemon)) == 5, 30, "the fifth webhook")
        daemon.kill()  # SIGKILL: nothing is flushed on the way out
        receiver.start()
        daemon.start()
        requests = receiver.wait_for(lambda rs: len(rs) >= 5, timeout=60, what="every event")
        got = sorted((json.loads(r.body)["Subject"], json.loads(r.body)["Event"]) for r in requests)
        assert got == [
            ("m1", "delivered"),
            ("m1", "delivered"),
            ("m1", "failed"),
            ("m2", "delivered"),
            ("m3", "delivered"),
        ]
        wait_until(lambda: _queued_hooks(daemon) == [], 30, "an empty webhook queue")
        assert "Traceback" not in daemon.stop()
    finally:
        receiver.stop()


def test_fromid_dsn_over_smtp_is_matched_to_the_message(daemon: RunningDaemon) -> None:
    from mailsrv.queue.dsn import DSNRecipient, make_dsn
    from mailsrv.smtpclient.reply import Reply

    with Receiver() as receiver:
        daemon.cli_ok("webhook", "outgoing", "alice", receiver.url)
        daemon.cli_ok("webhook", "fromid", "alice", "alice@example.org")
        daemon.cli_ok("queue", "keep", "alice", "1d")  # DSNs are matched to retired messages
        _send(daemon, ["x@remote.example", "y@remote.example"], "tracked")
        requests = receiver.wait_for(lambda rs: len(rs) >= 2, what="two delivered events")
        bodies = [json.loads(r.body) for r in requests]
        fromids = {b["FromID"] for b in bodies}
        assert len(fromids) == 2 and all(len(f) == 22 for f in fromids)
        assert len({b["QueueMsgID"] for b in bodies}) == 2  # one queued copy per recipient
        first = next(b for b in bodies if b["Event"] == "delivered")
        # The remote side later bounces it: a DSN to the fromid address, over port 25.
        dsn = make_dsn(
            "mx.remote.example",
            f"alice+{first['FromID']}@example.org",
            b"Subject: tracked\r\n\r\nhello\r\n",
            [DSNRecipient("x@remote.example", "failed", Reply(550, ("5.1.1 mailbox gone",)), "mx.remote.example")],
            0.0,
        )
        with smtplib.SMTP("127.0.0.1", daemon.ports["smtp"], timeout=30) as smtp:
            smtp.sendmail("", [f"alice+{first['FromID']}@example.org"], dsn)
        requests = receiver.wait_for(lambda rs: len(rs) >= 3, what="the DSN's event")
        body = json.loads(requests[-1].body)
        assert (body["Event"], body["DSN"], body["FromID"], body["QueueMsgID"]) == (
            "failed",
            True,
            first["FromID"],
            first["QueueMsgID"],
        )
        assert body["Suppressing"] is True and body["SMTPCode"] == 550 and body["Subject"] == "tracked"
    assert "Traceback" not in daemon.stop()
