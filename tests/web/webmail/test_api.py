"""The webmail JSON API and its other resources over the real daemon: every method, its
errors, the message document's sandbox policy, parts, raw, uploads and the event stream."""

from __future__ import annotations

import imaplib
import json
import time
from collections.abc import Iterator

import pytest

from tests.daemon import RunningDaemon
from tests.storeguard import assert_no_violation
from tests.web.webmail.harness import APIFailure, EventReader, WebmailClient, deliver, wait_for, webmail_daemon

HTML = (
    "Content-Type: multipart/related; boundary=r\r\n",
    "--r\r\nContent-Type: text/html\r\n\r\n<p onclick=x()>Hi<script>alert(1)</script>"
    '<img src="cid:pic@x"><img src="http://tracker.example/p.gif"></p>\r\n'
    "--r\r\nContent-Type: image/gif\r\nContent-ID: <pic@x>\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    "R0lGODlhAQABAAAAACw=\r\n--r--\r\n",
)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDaemon]:
    d = webmail_daemon(tmp_path_factory.mktemp("webmail-api"), extra_static="\n[limits]\nhttp_max_upload = 200000\n")
    try:
        yield d
    finally:
        d.stop()
        assert_no_violation(d)


@pytest.fixture(scope="module")
def alice(daemon: RunningDaemon) -> WebmailClient:
    return WebmailClient(daemon.ports["http"]).login()


def boxes(client: WebmailClient) -> dict[str, int]:
    return {b["name"]: b["id"] for b in client.call("Mailboxes")["mailboxes"]}


def test_auth_errors(daemon: RunningDaemon, alice: WebmailClient) -> None:
    anonymous = WebmailClient(daemon.ports["http"])
    with pytest.raises(APIFailure) as e:
        anonymous.call("Mailboxes")
    assert (e.value.status, e.value.code) == (401, "user:noAuth")
    with pytest.raises(APIFailure) as e:
        alice.call("Mailboxes", csrf="wrong")
    assert e.value.code == "user:badAuth"
    with pytest.raises(APIFailure) as e:
        WebmailClient(daemon.ports["http"]).login(password="wrong")
    assert e.value.code == "user:badAuth"
    assert anonymous.get("msg/1/raw", csrf=False)[0] == 403
    assert alice.get("msg/1/raw", csrf=False)[0] == 403  # the cookie alone is not enough


def test_mailboxes_and_their_changes(alice: WebmailClient) -> None:
    result = alice.call("Mailboxes")
    assert result["mailboxes"][0]["name"] == "INBOX" and result["seq"] >= 0
    alice.call("MailboxCreate", "Projects/2027")
    assert "Projects/2027" in boxes(alice)
    with pytest.raises(APIFailure) as e:
        alice.call("MailboxCreate", "Projects/2027")
    assert e.value.code == "user:exists"
    alice.call("MailboxRename", "Projects/2027", "Projects/2028")
    alice.call("MailboxDelete", "Projects/2028")
    assert "Projects/2028" not in boxes(alice)
    with pytest.raises(APIFailure) as e:
        alice.call("MailboxDelete", "INBOX")
    assert e.value.code == "user:permissionDenied"
    with pytest.raises(APIFailure) as e:
        alice.call("MailboxCreate", 42)
    assert e.value.code == "user:invalidInput"


def test_list_view_flags_search_and_html(daemon: RunningDaemon, alice: WebmailClient) -> None:
    deliver(daemon, "api html", body=HTML[1], extra=HTML[0])
    row = wait_for(alice, "api html")
    inbox = boxes(alice)["INBOX"]
    page = alice.call("MessageList", {"mailbox_id": inbox, "sort": "subject", "descending": False, "count": 10})
    assert any(m["id"] == row["id"] for m in page["messages"])
    with pytest.raises(APIFailure) as e:
        alice.call("MessageList", {"mailbox_id": inbox, "sort": "colour"})
    assert e.value.code == "user:invalidInput"
    assert alice.call("Thread", row["thread_id"])[0]["id"] == row["id"]
    view = alice.call("Message", row["id"])
    assert view["has_html"] and view["html_blocked"] == 1 and view["attachments"][0]["content_id"] == "pic@x"
    with pytest.raises(APIFailure) as e:
        alice.call("Message", 987654)
    assert e.value.code == "user:notFound"
    status, headers, body = alice.get(f"msg/{row['id']}/html")
    assert status == 200 and b"alert" not in body and b"tracker" not in body and b"onclick" not in body
    csp = headers["content-security-policy"]
    assert "script-src 'none'" in csp and "sandbox" in csp and "allow-scripts" not in csp and "http:" not in csp
    assert b'src="part/1?csrf=' in body
    status, headers, body = alice.get(f"msg/{row['id']}/html?remote=1")
    assert b"http://tracker.example/p.gif" in body and "http:" in headers["content-security-policy"]
    status, headers, body = alice.get(f"msg/{row['id']}/part/1")
    assert (status, headers["content-type"], body[:3]) == (200, "image/gif", b"GIF")
    assert headers["content-disposition"].startswith("inline")
    status, headers, _ = alice.get(f"msg/{row['id']}/part/0")  # the HTML itself: never inline
    assert headers["content-type"] == "application/octet-stream"
    assert headers["content-disposition"].startswith("attachment")
    assert alice.get(f"msg/{row['id']}/part/9")[0] == 404
    status, _, raw = alice.get(f"msg/{row['id']}/raw")
    assert status == 200 and b"Subject: api html" in raw
    assert alice.call("FlagsChange", [row["id"]], "add", ["\\Seen", "work"]) == 1
    with pytest.raises(APIFailure) as e:
        alice.call("FlagsChange", [row["id"]], "add", ["bad flag"])
    assert e.value.code == "user:invalidInput"
    found = alice.call("Search", {"query": 'subject:"api html" label:work -is:unread'})
    assert [m["id"] for m in found["messages"]] == [row["id"]]
    with pytest.raises(APIFailure) as e:
        alice.call("Search", {"query": "after:someday"})
    assert e.value.code == "user:invalidInput"
    alice.call("RemoteAllow", "carol@elsewhere.example", True)
    assert alice.call("Message", row["id"])["remote_allowed"]
    with pytest.raises(APIFailure):
        alice.call("RemoteAllow", "nobody", True)


def test_moves_prompt_answers_copy_delete_archive_junk_empty(daemon: RunningDaemon, alice: WebmailClient) -> None:
    alice.call("MailboxCreate", "Lists")
    deliver(daemon, "move me", sender="dave@elsewhere.example")
    row = wait_for(alice, "move me")
    moved = alice.call("Move", [row["id"]], "Lists")
    assert moved["moved"] == 1 and moved["prompt"]["kind"] == "create"
    assert moved["prompt"]["ruleset"]["msg_from"] == r"^dave@elsewhere\.example$"
    alice.call("RuleAnswer", moved["prompt"], "later")
    with pytest.raises(APIFailure) as e:
        alice.call("RuleAnswer", moved["prompt"], "maybe")
    assert e.value.code == "user:invalidInput"
    assert alice.call("Copy", [row["id"]], "Archive") == 1
    assert alice.call("Archive", [row["id"]]) == 1
    assert alice.call("Junk", [row["id"]], True) == 1
    assert alice.call("Junk", [row["id"]], False) == 1
    assert alice.call("Delete", [row["id"]]) == 1
    assert alice.call("MailboxEmpty", boxes(alice)["Trash"]) >= 1
    with pytest.raises(APIFailure) as e:
        alice.call("Move", [], "Lists")
    assert e.value.code == "user:invalidInput"
    with pytest.raises(APIFailure) as e:
        alice.call("Move", [row["id"]], "Nowhere")
    assert e.value.code in ("user:notFound", "user:invalidInput")


def test_settings_compose_drafts_upload_send(daemon: RunningDaemon, alice: WebmailClient) -> None:
    settings = alice.call("Settings")
    assert settings["show"] == "html" and settings["page_size"] == 50
    settings["signature"] = "Alice"
    assert alice.call("SettingsSave", settings)["signature"] == "Alice"
    settings["page_size"] = 1
    with pytest.raises(APIFailure) as e:
        alice.call("SettingsSave", settings)
    assert e.value.code == "user:invalidInput"
    assert [c["address"] for c in alice.call("FromChoices")] == ["alice@example.org", "team@example.org"]
    status, _, body = alice.request(
        "POST", "upload", b"file body\n", {"x-filename": "n%C3%B6tes.txt", "content-type": "text/plain"}
    )
    assert status == 403  # no CSRF header
    status, _, body = alice.request(
        "POST",
        "upload",
        b"file body\n",
        {"x-filename": "n%C3%B6tes.txt", "content-type": "text/plain", "x-mailsrv-csrf": alice.csrf},
    )
    upload = json.loads(body)
    assert status == 200 and upload["filename"] == "nötes.txt" and upload["size"] == 10
    status, _, _ = alice.request("POST", "upload", b"x" * 300_000, {"x-mailsrv-csrf": alice.csrf})
    assert status == 413
    form = {
        "to": [{"address": "bob@example.org", "name": "Bob"}],
        "subject": "api send",
        "text": "hello bob",
        "attachments": [{"upload": upload["token"]}],
    }
    draft = alice.call("DraftSave", form)
    reopened = alice.call("DraftOpen", draft)
    assert reopened["draft_id"] == draft and reopened["attachments"][0]["filename"] == "nötes.txt"
    sent = alice.call("Send", reopened)
    assert sent["message_id"].startswith("<") and sent["sent_copy"] > 0
    assert alice.call("Complete", "bo")[0]["address"] == "bob@example.org"
    imap = imaplib.IMAP4("127.0.0.1", daemon.ports["imap"])
    imap.starttls(daemon.ssl_context())
    imap.login("bob@example.org", "bobpass")
    imap.select("INBOX")
    _, data = imap.search(None, 'SUBJECT "api send"')
    (num,) = data[0].split()
    _, fetched = imap.fetch(num, "(RFC822)")
    raw = fetched[0][1]  # type: ignore[index]
    assert b"hello bob" in raw and b"ZmlsZSBib2R5Cg==" in raw  # the attachment, base64
    imap.logout()
    with pytest.raises(APIFailure) as e:
        alice.call("Send", {"to": [{"address": "x@example.org"}], "from": "bob@example.org"})
    assert e.value.code == "user:invalidInput"
    with pytest.raises(APIFailure) as e:
        alice.call("Send", {"subject": "nobody"})
    assert e.value.code == "user:invalidInput"
    with pytest.raises(APIFailure) as e:
        alice.call("Send", {"to": [{"address": "bob@example.org"}], "bogus": 1})
    assert e.value.code == "user:invalidInput"


def test_send_later_waits_in_the_queue(daemon: RunningDaemon, alice: WebmailClient) -> None:
    at = int(time.time()) + 3600
    form = {"to": [{"address": "later@remote.example"}], "subject": "send later", "text": "x", "send_at": at}
    assert alice.call("Send", form)["queued"] is True
    [queued] = [m for m in daemon.cli_json("queue", "list") if m["recipients"][0]["address"] == "later@remote.example"]
    assert queued["next_attempt"] == at, queued
    time.sleep(1)  # a due message would have had its first attempt by now
    history = daemon.cli_json("queue", "history", str(queued["id"]))
    assert history["attempts"] == [] and history["message"]["recipients"][0]["status"] == "queued", history
    daemon.cli_ok("queue", "drop", "--recipient", "later@remote.example")
    for bad in (at - 7200, int(time.time()) + 61 * 86400):
        with pytest.raises(APIFailure) as e:
            alice.call("Send", {**form, "send_at": bad})
        assert e.value.code == "user:invalidInput" and "send later" in str(e.value)
    assert not [m for m in daemon.cli_json("queue", "list") if m["recipients"][0]["address"] == "later@remote.example"]


def test_reply_template_from_alias(daemon: RunningDaemon, alice: WebmailClient) -> None:
    settings = alice.call("Settings")
    settings["signature"] = "Alice"  # set here too: under xdist this test may run before the settings test
    alice.call("SettingsSave", settings)
    deliver(daemon, "to the team", to="team@example.org", extra="Message-ID: <team1@elsewhere.example>\r\n")
    row = wait_for(alice, "to the team")
    form = alice.call("ComposeTemplate", row["id"], "reply")
    assert form["from"] == "team@example.org" and form["reply_to_id"] == row["id"]
    assert form["subject"] == "Re: to the team" and "-- \nAlice" in form["text"]
    with pytest.raises(APIFailure) as e:
        alice.call("ComposeTemplate", row["id"], "sideways")
    assert e.value.code == "user:invalidInput"


def test_event_stream_token_single_use_and_resume(daemon: RunningDaemon, alice: WebmailClient) -> None:
    start = alice.call("Mailboxes")["seq"]
    token = alice.call("EventToken")
    reader = EventReader(daemon.ports["http"], f"/webmail/events?token={token}&since={start}")
    try:
        assert reader.status == 200 and reader.headers["content-type"].startswith("text/event-stream")
        deliver(daemon, "streamed")
        name, data = reader.event()
        while not (data and data["kind"] == "delivered"):
            name, data = reader.event()
        assert name == "change" and data["messages"][0]["subject"] == "streamed"
        seen = data["seq"]
    finally:
        reader.close()
    again = EventReader(daemon.ports["http"], f"/webmail/events?token={token}&since={start}")
    assert again.status == 403  # single use
    again.close()
    deliver(daemon, "while away")
    wait_for(alice, "while away")
    token = alice.call("EventToken")
    resumed = EventReader(daemon.ports["http"], f"/webmail/events?token={token}&since={seen}")
    try:
        name, data = resumed.event()
        assert data is not None and data["seq"] == seen + 1 and data["messages"][0]["subject"] == "while away"
    finally:
        resumed.close()
    token = alice.call("EventToken")
    gone = EventReader(daemon.ports["http"], f"/webmail/events?token={token}&since=99999999")
    try:
        assert gone.event()[0] == "reload"
    finally:
        gone.close()


def test_logout(daemon: RunningDaemon) -> None:
    client = WebmailClient(daemon.ports["http"]).login("bob@example.org", "bobpass")
    client.call("Logout")
    with pytest.raises(APIFailure) as e:
        client.call("Mailboxes")
    assert e.value.code in ("user:noAuth", "user:badAuth")


def test_openapi_document(alice: WebmailClient) -> None:
    status, _, body = alice.request("GET", "api/openapi.json")
    document = json.loads(body)
    assert status == 200 and "/Send" in json.dumps(document)


def test_event_streams_are_limited_per_account_and_freed_on_disconnect(
    daemon: RunningDaemon, alice: WebmailClient
) -> None:
    port = daemon.ports["http"]
    readers = [EventReader(port, f"/webmail/events?token={alice.call('EventToken')}") for _ in range(20)]
    try:
        assert all(r.status == 200 for r in readers)
        over = EventReader(port, f"/webmail/events?token={alice.call('EventToken')}")
        assert over.status == 429
        over.close()
    finally:
        for r in readers:
            r.close()
    # The server notices a closed stream when it writes to it: a change event or, at the
    # latest, the keepalive comment (every 15 s).
    deliver(daemon, "wake the streams")
    deadline = time.monotonic() + 45
    while True:
        again = EventReader(port, f"/webmail/events?token={alice.call('EventToken')}")
        again.close()
        if again.status == 200:
            break
        assert time.monotonic() < deadline, "stream slots were not freed"
        time.sleep(0.5)
