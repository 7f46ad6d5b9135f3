"""Issue 13's "Done when": an application written only with an HTTP client and a JSON library
(urllib, http.server, json; `standardwebhooks` from PyPI to check signatures) against a
localserve-mode daemon. It sends through the webapi to localserve's failure forms, receives
`delivered`, `delayed`, `failed` and `suppressed` webhooks with valid signatures, receives an
incoming webhook for a reply, and reads, flags, moves and deletes that reply through the
webapi.

The part between the "application" markers imports nothing from mailsrv or the test helpers;
the harness around it starts the daemon and sets the account's webhooks through the CLI (as
the account's owner would on the account page).
"""

from __future__ import annotations

import base64
import json
import queue
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

# --- the application ------------------------------------------------------------------------

try:
    from standardwebhooks.webhooks import Webhook, WebhookVerificationError
except ImportError:  # pragma: no cover - installed with the test dependencies
    Webhook = None  # type: ignore[assignment,misc]


class WebapiError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class Application:
    """Sends mail and handles its webhooks. `secret` is the account's webhook signing secret."""

    def __init__(self, base_url: str, username: str, password: str, secret: str) -> None:
        self.base_url = base_url
        self.auth = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self.verifier = Webhook(secret)
        self.outgoing: queue.Queue[dict[str, Any]] = queue.Queue()
        self.incoming: queue.Queue[dict[str, Any]] = queue.Queue()
        self.rejected = 0
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                try:
                    app.verifier.verify(body, dict(self.headers.items()))
                except WebhookVerificationError:
                    app.rejected += 1
                    self.send_response(400)
                    self.end_headers()
                    return
                hook = json.loads(body)
                hook["_attempt"] = self.headers.get("X-Mox-Webhook-Attempt")
                (app.outgoing if self.path == "/outgoing" else app.incoming).put(hook)
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.hook_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def call(self, method: str, request: dict[str, Any]) -> Any:
        form = urllib.parse.urlencode({"request": json.dumps(request)}).encode()
        req = urllib.request.Request(self.base_url + method, form, {"Authorization": self.auth})
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                data = response.read()
                is_json = response.headers.get_content_type() == "application/json"
                return json.loads(data) if is_json else data
        except urllib.error.HTTPError as e:
            if e.code != 400:
                raise
            error = json.loads(e.read())
            raise WebapiError(error["Code"], error["Message"]) from None

    def send(self, to: str, subject: str, **fields: Any) -> dict[str, Any]:
        return self.call("Send", {"To": [{"Address": to}], "Subject": subject, "Text": "hello\n", **fields})

    def next_event(self, which: queue.Queue[dict[str, Any]], timeout: float = 90) -> dict[str, Any]:
        return which.get(timeout=timeout)

    def events_until(self, done: Any, timeout: float = 90) -> list[dict[str, Any]]:
        """Outgoing events until `done(events)` holds."""
        events: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while not done(events):
            events.append(self.outgoing.get(timeout=max(0.1, deadline - time.monotonic())))
        return events


# --- the harness ----------------------------------------------------------------------------

from tests.daemon import RunningDaemon, write_config  # noqa: E402


def _localserve_daemon(directory: Path) -> RunningDaemon:
    daemon = write_config(directory, extra_static="\n[webhooks]\nallow_private_targets = true\n")
    text = daemon.config_path.read_text()
    daemon.config_path.write_text(text.replace('data_dir = "data"\n', 'data_dir = "data"\nlocalserve = true\n', 1))
    daemon.start()
    return daemon


@pytest.mark.skipif(Webhook is None, reason="the standardwebhooks package (PyPI) is not installed")
def test_application_sends_gets_webhooks_and_handles_a_reply(tmp_path: Path) -> None:
    daemon = _localserve_daemon(tmp_path / "d")
    app: Application | None = None
    try:
        secret = daemon.cli_ok("webhook", "rotate", "alice").strip()
        address, password = daemon.accounts["alice"]
        app = Application(f"http://127.0.0.1:{daemon.ports['http']}/webapi/v0/", address, password, secret)
        daemon.cli_ok("webhook", "outgoing", "alice", app.hook_url + "/outgoing")
        daemon.cli_ok("webhook", "incoming", "alice", app.hook_url + "/incoming")

        # delivered: localserve puts it into alice's own INBOX.
        sent = app.send("someone@remote.example", "to be delivered", Extra={"order": "17"})
        queue_id = sent["Submissions"][0]["QueueMsgID"]
        event = app.next_event(app.outgoing)
        assert (event["Event"], event["QueueMsgID"], event["Extra"]) == ("delivered", queue_id, {"Order": "17"})
        assert event["MessageID"] == sent["MessageID"] and event["Subject"] == "to be delivered"
        assert event["_attempt"] == "1" and event["Version"] == 0

        # failed at once with a permanent error, and the address suppressed.
        failing = app.send("permerror@remote.example", "to fail")["Submissions"][0]["QueueMsgID"]
        failed = app.events_until(lambda evs: any(e["Event"] == "failed" for e in evs))
        [failure] = [e for e in failed if e["Event"] == "failed"]
        assert failure["QueueMsgID"] == failing and failure["SMTPCode"] == 550 and failure["Suppressing"] is True
        assert app.call("SuppressionPresent", {"EmailAddress": "permerror@remote.example"}) == {"Present": True}
        # The next message to it is suppressed, not attempted.
        again = app.send("permerror@remote.example", "suppressed")["Submissions"][0]["QueueMsgID"]
        events = app.events_until(lambda evs: any(e["Event"] == "suppressed" for e in evs))
        assert next(e for e in events if e["Event"] == "suppressed")["QueueMsgID"] == again

        # delayed (temporary errors, retried quickly in localserve), then failed.
        temp = app.send("temperror@remote.example", "to be delayed")["Submissions"][0]["QueueMsgID"]
        events = app.events_until(lambda evs: any(e["Event"] == "failed" and e["QueueMsgID"] == temp for e in evs))
        kinds = [e["Event"] for e in events if e["QueueMsgID"] == temp]
        assert "delayed" in kinds and kinds[-1] == "failed", kinds

        # A reply from bob arrives: the incoming webhook names it; the app handles it over the webapi.
        bob = Application(f"http://127.0.0.1:{daemon.ports['http']}/webapi/v0/", *daemon.accounts["bob"], secret=secret)
        try:
            bob.call(
                "Send",
                {
                    "To": [{"Address": address}],
                    "Subject": "Re: hello",
                    "Text": "thanks!\n",
                    "References": [sent["MessageID"]],
                },
            )
        finally:
            bob.close()
        incoming = app.next_event(app.incoming)
        while incoming["Subject"] != "Re: hello":  # localserve's own deliveries into the INBOX come first
            incoming = app.next_event(app.incoming)
        assert incoming["From"][0]["Address"] == "bob@example.org" and incoming["Text"] == "thanks!\n"
        msg_id = incoming["Meta"]["MsgID"]
        got = app.call("MessageGet", {"MsgID": msg_id})
        assert got["Message"]["Subject"] == "Re: hello" and got["Message"]["References"] == [sent["MessageID"]]
        assert b"thanks!" in app.call("MessageRawGet", {"MsgID": msg_id})
        app.call("MessageFlagsAdd", {"MsgID": msg_id, "Flags": ["\\Seen", "handled"]})
        app.call("MessageMove", {"MsgID": msg_id, "DestMailboxName": "Archive"})
        meta = app.call("MessageGet", {"MsgID": msg_id})["Meta"]
        assert meta["MailboxName"] == "Archive" and set(meta["Flags"]) >= {"\\seen", "handled"}
        app.call("MessageDelete", {"MsgID": msg_id})
        with pytest.raises(WebapiError) as gone:
            app.call("MessageGet", {"MsgID": msg_id})
        assert gone.value.code == "messageNotFound"
        assert app.rejected == 0
    finally:
        if app is not None:
            app.close()
        daemon.kill()
