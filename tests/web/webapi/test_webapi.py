"""The webapi over real sockets against the daemon: every method, the ways to pass a request,
authentication, and every refusal with its code (nothing queued or delivered after one)."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon import DEFAULT_ACCOUNTS, RunningDaemon, start_daemon, wait_until, write_config
from tests.storeguard import assert_no_violation
from tests.web.webapi.client import WebapiClient, message_id_in_store, queue_high_water, stored_count

WEBAPI = "\n[web]\nwebapi_enabled = true\n"
LIMITS = "\n[limits]\nmax_message_size = 200000\n"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDaemon]:
    accounts = {**DEFAULT_ACCOUNTS, "carol": ("carol@example.org", "carolpass")}
    running = write_config(tmp_path_factory.mktemp("webapi") / "d", accounts=accounts, extra_static=WEBAPI + LIMITS)
    dynamic = running.data_dir / "dynamic.toml"
    # carol's login address uses fromid: a unique MAIL FROM per queued copy.
    text = dynamic.read_text().replace(
        'addresses = ["carol@example.org"]\n',
        'addresses = ["carol@example.org"]\nfromid_login_addresses = ["carol@example.org"]\n',
    )
    dynamic.write_text(text)
    running.python_args = ("-m", "tests.storeguard")  # no synchronous store read on a request path
    running.start()
    try:
        for account in ("alice", "carol"):
            running.cli_ok("queue", "keep", account, "1d")  # finished messages stay listed (retired)
        yield running
        assert_no_violation(running)
    finally:
        running.kill()


def _client(daemon: RunningDaemon, who: str = "alice") -> WebapiClient:
    address, password = daemon.accounts[who]
    return WebapiClient(f"http://127.0.0.1:{daemon.ports['http']}/webapi/v0/", address, password)


def _unique(tag: str) -> str:
    return f"{tag}-{time.monotonic_ns()}"


def _wait_msgid(daemon: RunningDaemon, account: str, message_id: str) -> int:
    found: list[int] = []

    def present() -> bool:
        msgid = message_id_in_store(daemon.data_dir, account, message_id)
        if msgid is not None:
            found.append(msgid)
        return bool(found)

    wait_until(present, what=f"{message_id} in {account}'s store")
    return found[0]


def _count(daemon: RunningDaemon, account: str, subject: str) -> int:
    """Messages of the account's INBOX with `subject`, read over IMAP."""
    address, password = daemon.accounts[account]
    return sum(subject.encode() in m for m in daemon.inbox(address, password))


# --- documentation ----------------------------------------------------------------------


def test_index_lists_every_method_without_script(daemon: RunningDaemon) -> None:
    answer = WebapiClient(f"http://127.0.0.1:{daemon.ports['http']}/webapi/v0/", None, None).get("")
    assert answer.status == 200 and answer.headers.get_content_type() == "text/html"
    page = answer.body.decode()
    for method in ("Send", "SuppressionList", "MessageGet", "MessageRawGet", "MessagePartGet", "MessageMove"):
        assert f"id='{method}'" in page
    assert "<script" not in page.lower() and "<style" not in page.lower()
    assert "default-src 'self'" in (answer.headers.get("Content-Security-Policy") or "")
    style = WebapiClient(f"http://127.0.0.1:{daemon.ports['http']}/webapi/v0/", None, None).get("style.css")
    assert style.status == 200 and style.headers.get_content_type() == "text/css"
    method_page = WebapiClient(f"http://127.0.0.1:{daemon.ports['http']}/webapi/v0/", None, None).get("MessageGet")
    assert method_page.status == 200 and b"MsgID" in method_page.body


def test_openapi_document_covers_every_method(daemon: RunningDaemon) -> None:
    answer = WebapiClient(f"http://127.0.0.1:{daemon.ports['http']}/webapi/v0/", None, None).get("openapi.json")
    assert answer.status == 200
    doc = answer.json()
    assert doc["openapi"].startswith("3.1")
    assert "/webapi/v0/Send" in doc["paths"] and "/webapi/v0/MessageFlagsAdd" in doc["paths"]
    schemas = doc["components"]["schemas"]
    assert set(schemas["SendRequest"]["properties"]) >= {"From", "To", "CC", "BCC", "Extra", "AttachedFiles"}
    # Every reference resolves.
    refs = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                refs.add(node["$ref"].rsplit("/", 1)[1])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(doc)
    assert refs and refs <= set(schemas)


# --- authentication ---------------------------------------------------------------------


def test_missing_and_wrong_credentials_are_401(daemon: RunningDaemon) -> None:
    anonymous = WebapiClient(f"http://127.0.0.1:{daemon.ports['http']}/webapi/v0/", None, None)
    answer = anonymous.call("MessageGet", {"MsgID": 1})
    assert answer.status == 401 and "Basic" in (answer.headers.get("WWW-Authenticate") or "")
    wrong = WebapiClient(f"http://127.0.0.1:{daemon.ports['http']}/webapi/v0/", "alice@example.org", "nope")
    assert wrong.call("MessageGet", {"MsgID": 1}).status == 401
    daemon.cli_ok("ratelimit", "reset")


def test_unknown_method_is_404(daemon: RunningDaemon) -> None:
    assert _client(daemon).call("NoSuchMethod", {}).status == 404


# --- Send -------------------------------------------------------------------------------


def test_send_text_to_a_local_account_every_way_to_pass_the_request(daemon: RunningDaemon) -> None:
    api = _client(daemon)
    for how in ("form", "json", "multipart"):
        subject = _unique(f"send-{how}")
        result = api.ok(
            "Send", {"To": [{"Name": "Bob", "Address": "bob@example.org"}], "Subject": subject, "Text": "hi ☺\n"}, how
        )
        assert result["MessageID"].startswith("<") and result["MessageID"].endswith("@example.org>")
        assert result["Submissions"] == [{"Address": "bob@example.org", "QueueMsgID": 0, "FromID": ""}]
        assert _count(daemon, "bob", subject) == 1
    [copy] = [m for m in daemon.inbox(*daemon.accounts["bob"]) if subject.encode() in m]
    assert b"From: alice@example.org" in copy and b"with HTTP id" in copy and b"from webapi" in copy


def test_send_to_a_remote_address_queues_it(daemon: RunningDaemon) -> None:
    subject = _unique("remote")
    result = _client(daemon).ok(
        "Send",
        {
            "To": [{"Address": "someone@remote.example"}],
            "CC": [{"Address": "bob@example.org"}],
            "Subject": subject,
            "Text": "x",
        },
    )
    [remote, local] = result["Submissions"]
    assert remote["Address"] == "someone@remote.example" and remote["QueueMsgID"] > 0
    assert local == {"Address": "bob@example.org", "QueueMsgID": 0, "FromID": ""}
    # Queued (or already retired: the test DNS answers NXDOMAIN, so delivery fails fast).
    listed = daemon.cli_json("queue", "list") + daemon.cli_json("queue", "retired")
    assert any(m["id"] == remote["QueueMsgID"] for m in listed), listed


def test_send_with_fromid_and_extra(daemon: RunningDaemon) -> None:
    request = {
        "To": [{"Address": "far@remote.example"}, {"Address": "other@remote.example"}],
        "BCC": [{"Address": "bob@example.org"}],
        "Subject": _unique("fromid"),
        "Text": "x",
        "Extra": {"order-id": "42", "customer": "7"},
    }
    first, second, local = _client(daemon, "carol").ok("Send", request)["Submissions"]
    assert local == {"Address": "bob@example.org", "QueueMsgID": 0, "FromID": ""}
    # One queued copy per remote recipient, each with its own MAIL FROM carol+<fromid>@example.org.
    assert first["QueueMsgID"] != second["QueueMsgID"] and first["FromID"] != second["FromID"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", first["FromID"])
    history = daemon.cli_json("queue", "history", str(first["QueueMsgID"]))
    assert f"carol+{first['FromID']}@example.org" in json.dumps(history)
    code, message = _client(daemon, "carol").error("Send", {**request, "Extra": {"bad key!": "x"}})
    assert code == "user" and "Extra" in message


def test_send_with_future_release_waits_in_the_queue(daemon: RunningDaemon) -> None:
    release = time.time() + 3600
    request = {
        "To": [{"Address": "later@remote.example"}],
        "Subject": _unique("later"),
        "Text": "x",
        "FutureRelease": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(release)),
    }
    queue_id = _client(daemon).ok("Send", request)["Submissions"][0]["QueueMsgID"]
    [queued] = [m for m in daemon.cli_json("queue", "list") if m["id"] == queue_id]
    assert abs(queued["next_attempt"] - release) < 2, queued
    daemon.cli_ok("queue", "drop", "--recipient", "later@remote.example")


def test_future_release_holds_local_recipients_and_the_sent_copy_too(daemon: RunningDaemon) -> None:
    """Issue 15: nobody gets a FutureRelease message before its time, recipients on this server
    neither; `queue retry` sends it now, and the Sent copy (SaveSent) comes then."""
    subject = _unique("local later")
    request = {
        "To": [{"Address": "bob@example.org"}],
        "Subject": subject,
        "Text": "x",
        "SaveSent": True,
        "FutureRelease": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600)),
    }
    [submission] = _client(daemon).ok("Send", request)["Submissions"]
    assert submission["Address"] == "bob@example.org" and submission["QueueMsgID"]
    assert _count(daemon, "bob", subject) == 0
    alice_address, alice_password = daemon.accounts["alice"]
    assert not [m for m in daemon.inbox(alice_address, alice_password, "Sent") if subject.encode() in m]
    daemon.cli_ok("queue", "retry", str(submission["QueueMsgID"]))
    wait_until(lambda: _count(daemon, "bob", subject) == 1, what="the local copy")
    wait_until(
        lambda: [m for m in daemon.inbox(alice_address, alice_password, "Sent") if subject.encode() in m],
        what="the Sent copy",
    )


def test_send_go_client_shape_nulls_and_any_key_case(daemon: RunningDaemon) -> None:
    # mox's Go client sends every field, null for empty lists; Go matches keys ignoring case.
    subject = _unique("go")
    request = {
        "From": None,
        "to": [{"address": "bob@example.org", "name": ""}],
        "CC": None,
        "BCC": None,
        "ReplyTo": None,
        "MessageID": "",
        "References": None,
        "Date": None,
        "Subject": subject,
        "Text": "hi",
        "HTML": "",
        "Extra": None,
        "Headers": None,
        "AlternativeFiles": None,
        "InlineFiles": None,
        "AttachedFiles": None,
        "RequireTLS": None,
        "FutureRelease": None,
        "SaveSent": False,
    }
    result = _client(daemon).ok("Send", request)
    assert result["Submissions"][0]["Address"] == "bob@example.org"
    assert _count(daemon, "bob", subject) == 1


def test_send_structure_files_headers_and_save_sent(daemon: RunningDaemon) -> None:
    api = _client(daemon)
    subject = _unique("files")
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    request = {
        "From": [{"Name": "Alice", "Address": "alice@example.org"}],
        "To": [{"Address": "bob@example.org"}],
        "BCC": [{"Address": "alice@example.org"}],
        "Subject": subject,
        "Text": "plain ☺\n",
        "HTML": '<p>html <img src="cid:logo"></p>',
        "MessageID": f"<{subject}@example.org>",
        "References": ["<a@x>", "<b@x>"],
        "Date": "2026-12-07T10:00:00+01:00",
        "Headers": [["List-Unsubscribe", "<https://example.org/u>"], ["X-Campaign", "winter"]],
        "AttachedFiles": [{"Name": "notes.txt", "ContentType": "text/plain", "Data": base64.b64encode(b"n").decode()}],
        "SaveSent": True,
    }
    answer = api.multipart(
        "Send",
        json.dumps(request),
        [("inlinefile", "logo.png", "image/png", png, "<logo>"), ("attachedfile", "data.bin", "", b"\0\1", "")],
    )
    assert answer.status == 200, answer.body
    assert answer.json()["MessageID"] == f"<{subject}@example.org>"
    msgid = _wait_msgid(daemon, "bob", f"<{subject}@example.org>")
    got = _client(daemon, "bob").ok("MessageGet", {"MsgID": msgid})
    message, structure, meta = got["Message"], got["Structure"], got["Meta"]
    assert message["Subject"] == subject and message["Text"] == "plain ☺\n"
    assert message["HTML"].startswith("<p>html") and message["References"] == ["<a@x>", "<b@x>"]
    assert message["From"] == [{"Name": "Alice", "Address": "alice@example.org"}]
    assert message["BCC"] == [] and message["Date"].startswith("2026-12-07T")
    assert structure["ContentType"] == "multipart/mixed"
    related, notes, data = structure["Parts"]
    assert related["ContentType"] == "multipart/related"
    alternative, logo = related["Parts"]
    assert [p["ContentType"] for p in alternative["Parts"]] == ["text/plain", "text/html"]
    assert logo["ContentID"] == "<logo>" and logo["DecodedSize"] == len(png) and logo["Filename"] == "logo.png"
    assert notes["Filename"] == "notes.txt" and data["ContentType"] == "application/octet-stream"
    assert meta["MailboxName"] == "Inbox" and meta["RcptTo"] == "bob@example.org" and meta["Size"] > 0
    assert meta["MsgFrom"] == "alice@example.org" and meta["DSN"] is False
    # The part, decoded; the raw message with our fields.
    part = _client(daemon, "bob").call("MessagePartGet", {"MsgID": msgid, "PartPath": [0, 1]})
    assert part.status == 200 and part.body == png and part.headers.get_content_type() == "image/png"
    raw = _client(daemon, "bob").ok("MessageRawGet", {"MsgID": msgid})
    assert b"List-Unsubscribe: <https://example.org/u>" in raw and b"X-Campaign: winter" in raw
    assert b"In-Reply-To: <b@x>" in raw and b"References: <a@x> <b@x>" in raw and b"Bcc" not in raw
    # SaveSent: a copy in alice's Sent with the Bcc field, seen.
    sent_id = _wait_msgid(daemon, "alice", f"<{subject}@example.org>")
    sent = api.ok("MessageGet", {"MsgID": sent_id})
    assert sent["Meta"]["MailboxName"] == "Sent" and "\\seen" in sent["Meta"]["Flags"]
    assert sent["Message"]["BCC"] == [{"Name": "", "Address": "alice@example.org"}]


# --- suppression lists ------------------------------------------------------------------


def test_suppression_list_add_present_remove(daemon: RunningDaemon) -> None:
    api = _client(daemon, "bob")
    assert api.ok("SuppressionList", {}) == {"Suppressions": []}
    assert (
        api.ok("SuppressionAdd", {"EmailAddress": "Gone+News@Remote.example", "Manual": True, "Reason": "asked"}) == {}
    )
    [entry] = api.ok("SuppressionList", {})["Suppressions"]
    assert entry["Account"] == "bob" and entry["OriginalAddress"] == "Gone+News@remote.example"
    assert entry["BaseAddress"] == "gone@remote.example" and entry["Manual"] is True and entry["Reason"] == "asked"
    assert entry["ID"] > 0 and entry["Created"].startswith("20")
    assert api.ok("SuppressionPresent", {"EmailAddress": "gone@remote.example"}) == {"Present": True}
    assert api.ok("SuppressionPresent", {"EmailAddress": "other@remote.example"}) == {"Present": False}
    # Per account: alice's list is her own.
    assert _client(daemon).ok("SuppressionPresent", {"EmailAddress": "gone@remote.example"}) == {"Present": False}
    # A message to it fails at once: a DSN comes back, no delivery attempt.
    subject = _unique("suppressed")
    result = api.ok("Send", {"To": [{"Address": "gone@remote.example"}], "Subject": subject, "Text": "x"})
    assert result["Submissions"][0]["QueueMsgID"] > 0
    wait_until(
        lambda: any(
            b"gone@remote.example" in m and subject.encode() in m for m in daemon.inbox(*daemon.accounts["bob"])
        ),
        what="the DSN for the suppressed recipient",
    )
    assert api.ok("SuppressionRemove", {"EmailAddress": "gone@remote.example"}) == {}
    assert api.ok("SuppressionPresent", {"EmailAddress": "gone+news@remote.example"}) == {"Present": False}
    assert api.error("SuppressionRemove", {"EmailAddress": "gone@remote.example"})[0] == "notFound"
    assert api.error("SuppressionAdd", {"EmailAddress": "not an address"})[0] == "badAddress"
    assert api.error("SuppressionAdd", {"EmailAddress": "a@remote.example", "Reason": "a\nb"})[0] == "user"


# --- messages ---------------------------------------------------------------------------


def _delivered(daemon: RunningDaemon, subject: str) -> int:
    result = _client(daemon).ok("Send", {"To": [{"Address": "bob@example.org"}], "Subject": subject, "Text": "t"})
    return _wait_msgid(daemon, "bob", result["MessageID"])


def test_flags_move_delete(daemon: RunningDaemon) -> None:
    bob = _client(daemon, "bob")
    msgid = _delivered(daemon, _unique("manage"))
    assert bob.ok("MessageFlagsAdd", {"MsgID": msgid, "Flags": ["\\Seen", "custom", "$Junk"]}) == {}
    assert set(bob.ok("MessageGet", {"MsgID": msgid})["Meta"]["Flags"]) == {"\\seen", "custom", "$junk"}
    assert bob.ok("MessageFlagsRemove", {"MsgID": msgid, "Flags": ["custom", "$junk"]}) == {}
    assert bob.ok("MessageGet", {"MsgID": msgid})["Meta"]["Flags"] == ["\\seen"]
    assert bob.ok("MessageMove", {"MsgID": msgid, "DestMailboxName": "Archive"}) == {}
    assert bob.ok("MessageGet", {"MsgID": msgid})["Meta"]["MailboxName"] == "Archive"  # the id stays
    assert bob.error("MessageMove", {"MsgID": msgid, "DestMailboxName": "Archive"})[0] == "user"
    assert bob.error("MessageMove", {"MsgID": msgid, "DestMailboxName": "Nowhere"})[0] == "user"
    assert bob.ok("MessageMove", {"MsgID": msgid, "DestMailboxName": "Inbox"}) == {}  # mox's name for INBOX
    assert bob.ok("MessageGet", {"MsgID": msgid})["Meta"]["MailboxName"] == "Inbox"
    assert bob.ok("MessageDelete", {"MsgID": msgid}) == {}
    assert bob.error("MessageGet", {"MsgID": msgid})[0] == "messageNotFound"
    assert bob.error("MessageDelete", {"MsgID": msgid})[0] == "messageNotFound"


def test_message_ids_are_per_account(daemon: RunningDaemon) -> None:
    msgid = _delivered(daemon, _unique("mine"))
    # alice has no message with bob's id (or a different one): never bob's message.
    answer = _client(daemon).call("MessageGet", {"MsgID": msgid})
    if answer.status == 200:
        assert answer.json()["Meta"]["RcptTo"] != "bob@example.org"
    else:
        assert answer.json()["Code"] == "messageNotFound"


def test_message_errors(daemon: RunningDaemon) -> None:
    bob = _client(daemon, "bob")
    assert bob.error("MessageGet", {"MsgID": 999999})[0] == "messageNotFound"
    assert bob.error("MessageRawGet", {"MsgID": 0})[0] == "messageNotFound"
    msgid = _delivered(daemon, _unique("parts"))
    assert bob.error("MessagePartGet", {"MsgID": msgid, "PartPath": [3]})[0] == "partNotFound"
    assert bob.error("MessageFlagsAdd", {"MsgID": msgid, "Flags": ["\\Recent"]})[0] == "user"


# --- bad input: 400 with a code, nothing sent ---------------------------------------------


@pytest.mark.parametrize(
    ("request_text", "code"),
    [
        ("{not json", "badJSON"),
        ('{"To": [{"Address": "bob@example.org"}], "Text": "x", "Bogus": 1}', "unknownField"),
        ('{"To": [{"Address": "bob@example.org", "Nick": "b"}], "Text": "x"}', "unknownField"),
        ('{"To": "bob@example.org", "Text": "x"}', "badType"),
        ('{"To": [{"Address": "bob@example.org"}], "Text": 5}', "badType"),
        ('{"To": [{"Address": "bob@example.org"}], "Text": "x", "AttachedFiles": [{"Data": "!!"}]}', "badType"),
        ('{"To": [{"Address": "bob@example.org"}]}', "missingBody"),
        ('{"Text": "x"}', "noRecipients"),
        ('{"To": [{"Address": "not an address"}], "Text": "x"}', "badAddress"),
        ('{"From": [{"Address": "bob@example.org"}], "To": [{"Address": "bob@example.org"}], "Text": "x"}', "badFrom"),
        (
            '{"From": [{"Address": "alice@example.org"}, {"Address": "alice@example.org"}], '
            '"To": [{"Address": "bob@example.org"}], "Text": "x"}',
            "multipleFrom",
        ),
        ('{"To": [{"Address": "bob@example.org"}], "Text": "x", "MessageID": "no-brackets"}', "malformedMessageID"),
        ('{"To": [{"Address": "bob@example.org"}], "Text": "x", "Headers": [["X-A", "a\\r\\nBcc: e@x"]]}', "badHeader"),
        ('{"To": [{"Address": "bob@example.org"}], "Text": "x", "Headers": [["X-A\\nB", "a"]]}', "badHeader"),
        ('{"To": [{"Address": "bob@example.org"}], "Text": "x", "Headers": [["From", "e@x"]]}', "badHeader"),
        ('{"To": [{"Address": "bob@example.org"}], "Text": "x", "Subject": "a\\nBcc: e@x"}', "badHeader"),
        ('{"To": [{"Name": "B\\r\\nBcc: e@x", "Address": "bob@example.org"}], "Text": "x"}', "badHeader"),
        ('{"To": [{"Address": "bob@example.org"}], "Text": "x", "FutureRelease": "2100-01-01T00:00:00Z"}', "user"),
        ("", "protocol"),
    ],
)
def test_bad_send_is_refused_and_nothing_is_sent(daemon: RunningDaemon, request_text: str, code: str) -> None:
    before = stored_count(daemon.data_dir, "bob"), queue_high_water(daemon.data_dir)
    got, message = _client(daemon).error("Send", request_text)
    assert got == code, message
    assert (stored_count(daemon.data_dir, "bob"), queue_high_water(daemon.data_dir)) == before


def test_oversized_attachment_is_refused(daemon: RunningDaemon) -> None:
    before = stored_count(daemon.data_dir, "bob"), queue_high_water(daemon.data_dir)
    big = base64.b64encode(b"x" * 300_000).decode()
    request = {
        "To": [{"Address": "bob@example.org"}, {"Address": "far@remote.example"}],
        "Text": "x",
        "AttachedFiles": [{"Name": "a", "Data": big}],
    }
    assert _client(daemon).error("Send", request)[0] == "messageTooLarge"
    assert (stored_count(daemon.data_dir, "bob"), queue_high_water(daemon.data_dir)) == before


def test_not_a_form(daemon: RunningDaemon) -> None:
    answer = _client(daemon).post("Send", b"hello", "text/plain")
    assert answer.status == 400 and answer.json()["Code"] == "protocol"


# --- the rate limit and the login cache ---------------------------------------------------


def test_failed_logins_are_rate_limited_with_429(tmp_path: Path) -> None:
    daemon = start_daemon(tmp_path / "d", extra_static=WEBAPI + "\n[limits]\nlogin_failures_per_ip = 3\n")
    try:
        wrong = WebapiClient(f"http://127.0.0.1:{daemon.ports['http']}/webapi/v0/", "alice@example.org", "nope")
        statuses = [wrong.call("MessageGet", {"MsgID": 1}).status for _ in range(5)]
        assert statuses[:3] == [401, 401, 401] and statuses[-1] == 429, statuses
        answer = _client(daemon).call("MessageGet", {"MsgID": 1})
        assert answer.status == 429 and answer.headers.get("Retry-After")
    finally:
        daemon.kill()


# --- docs/webapi.md ---------------------------------------------------------------------


def test_the_documented_python_client_runs(daemon: RunningDaemon) -> None:
    doc = (Path(__file__).resolve().parents[3] / "docs" / "webapi.md").read_text()
    [example] = re.findall(r"```python webapi-example\n(.*?)```", doc, re.S)
    assert len(example.strip().splitlines()) <= 22
    address, password = daemon.accounts["alice"]
    env = dict(os.environ, WEBAPI=f"http://127.0.0.1:{daemon.ports['http']}/webapi/v0/")
    env.update(WEBAPI_USER=address, WEBAPI_PASSWORD=password)
    run = subprocess.run([sys.executable, "-c", example], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert re.fullmatch(r"sent <[^>]+@example\.org> \[0\]\n", run.stdout), run.stdout
    message_id = run.stdout.split()[1]
    assert _wait_msgid(daemon, "alice", message_id) > 0


def test_api_token_as_basic_password(daemon: RunningDaemon) -> None:
    """A token made with the CLI is the Basic password of alice's addresses on the webapi (plain
    urllib), not an IMAP or SMTP password; listed with its last use; revoked, it is 401 at once."""
    import imaplib
    import smtplib
    import urllib.error
    import urllib.parse
    import urllib.request

    out = daemon.cli_ok("apitoken", "add", "alice", "urllib test", "--days", "7")
    token = out.split()[0]
    assert token.startswith("mailsrv_") and "urllib test" in out
    url = f"http://127.0.0.1:{daemon.ports['http']}/webapi/v0/Send"
    subject = _unique("token")

    def send(user: str, password: str) -> int:
        basic = base64.b64encode(f"{user}:{password}".encode()).decode()
        request = {"To": [{"Address": "bob@example.org"}], "Subject": subject, "Text": "by token\n"}
        form = urllib.parse.urlencode({"request": json.dumps(request)}).encode()
        try:
            with urllib.request.urlopen(urllib.request.Request(url, form, {"Authorization": f"Basic {basic}"})) as r:
                assert "MessageID" in json.load(r)
                return int(r.status)
        except urllib.error.HTTPError as e:
            return e.code

    assert send("alice@example.org", token) == 200
    assert send("bob@example.org", token) == 401  # another account's address
    wait_until(lambda: _count(daemon, "bob", subject) == 1, what="the message sent with a token")
    listed = daemon.cli_json("apitoken", "list", "alice")
    assert [t["name"] for t in listed] == ["urllib test"] and listed[0]["last_used"] and listed[0]["expires"]
    assert "urllib test" in daemon.cli_ok("apitoken", "list", "alice")
    # Not a password anywhere else.
    imap = imaplib.IMAP4("127.0.0.1", daemon.ports["imap"])
    imap.starttls(daemon.ssl_context())
    with pytest.raises(imaplib.IMAP4.error):
        imap.login("alice@example.org", token)
    imap.logout()
    with smtplib.SMTP("127.0.0.1", daemon.ports["submission"], timeout=30) as smtp:
        smtp.starttls(context=daemon.ssl_context())
        with pytest.raises(smtplib.SMTPAuthenticationError):
            smtp.login("alice@example.org", token)
    assert "revoked" in daemon.cli_ok("apitoken", "remove", "alice", "urllib test")
    assert send("alice@example.org", token) == 401
    assert daemon.cli_json("apitoken", "list", "alice") == []
    refused = daemon.cli("apitoken", "remove", "alice", "urllib test")
    assert refused.returncode != 0 and "no token" in refused.stderr


def test_send_logs_the_accepted_line_not_an_access_line(daemon: RunningDaemon) -> None:
    """A Send is traced like SMTP submission (docs/operations.md's regular expression), with the
    account and the queue; its HTTP access log line would only repeat it, a refused call keeps one."""
    from tests.test_maillog import ACCEPTED, RECIPIENT, lines

    message_id = f"<{_unique('logged')}@example.org>"
    request = {"To": [{"Address": "someone@remote.example"}], "MessageID": message_id, "Text": "x\n"}
    queue_id = _client(daemon).ok("Send", request)["Submissions"][0]["QueueMsgID"]
    assert _client(daemon).call("Send", {"Text": "no recipient\n"}).status == 400

    def logged() -> list[re.Match[str]]:
        return [m for m in lines(daemon, ACCEPTED) if m["mid"] == message_id.strip("<>")]

    wait_until(lambda: bool(logged()), what="the accepted line")
    (match,) = logged()
    assert match["account"] == "alice" and match["sender"] == "alice@example.org" and match["ip"] == "127.0.0.1"
    (rcpt,) = RECIPIENT.findall(match["rcpts"])
    assert rcpt == ("someone@remote.example", f"queue {queue_id}")
    log = daemon.log()
    assert '"POST /webapi/v0/Send HTTP/1.1" 400' in log
    assert '"POST /webapi/v0/Send HTTP/1.1" 200' not in log
