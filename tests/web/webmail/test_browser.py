"""The webmail in Debian's chromium (Playwright), against the real daemon: login, reading text
and HTML (no script runs; a remote image is fetched only once allowed, counted by a local
HTTP server), compose with an attachment that arrives intact over IMAP, a reply keeping
In-Reply-To/References, a draft saved and reopened, search with operators, a message
delivered over SMTP appearing without reload, and the "make a rule?" flow."""

from __future__ import annotations

import email
import email.policy
import http.server
import imaplib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.daemon import RunningDaemon, free_port, wait_until
from tests.queue.sink import RecordingSink
from tests.storeguard import assert_no_violation
from tests.web.webmail.harness import WebmailClient, deliver, wait_for, webmail_daemon

# One worker runs the whole module: one daemon and one browser for its tests (the fixtures are
# per module), and tests that build on the mail of earlier ones see it.
pytestmark = pytest.mark.xdist_group("webmail_browser")

# MAILSRV_SCREENSHOTS=1 refreshes docs/web.md's screenshots; other runs leave the checkout alone.
SCREENSHOTS = Path(__file__).resolve().parents[3] / "docs" / "web"


def shot(page: Any, name: str) -> None:
    if os.environ.get("MAILSRV_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / name))


class Counter(http.server.BaseHTTPRequestHandler):
    """Counts GETs by path: the "remote" server of the HTML tests."""

    hits: dict[str, int] = {}

    def do_GET(self) -> None:
        Counter.hits[self.path] = Counter.hits.get(self.path, 0) + 1
        self.send_response(200)
        self.send_header("content-type", "image/gif")
        self.end_headers()
        self.wfile.write(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def counter() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Counter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def sink() -> Iterator[RecordingSink]:
    """The other server: remote.example's MX (the daemon's queue delivers to its port)."""
    with RecordingSink(free_port()) as s:
        yield s


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, sink: RecordingSink) -> Iterator[RunningDaemon]:
    d = webmail_daemon(
        tmp_path_factory.mktemp("webmail-browser"), extra_static=f"\n[smtp]\nremote_port = {sink.port}\n"
    )
    assert d.dns is not None
    d.dns.add("remote.example", "MX", "10 mx.remote.example.")
    d.dns.add("mx.remote.example", "A", "127.0.0.1")
    try:
        yield d
    finally:
        d.stop()
        assert_no_violation(d)


@pytest.fixture
def page(browser: Any, daemon: RunningDaemon) -> Iterator[Any]:
    """Logged in as alice; fails the test on an uncaught error or a CSP violation (as
    tests/web/browser.py's `page` does)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(20_000)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"uncaught: {e}"))
    page.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None)
    login(page, daemon)
    try:
        yield page
    finally:
        context.close()
    assert problems == [], problems


def login(page: Any, daemon: RunningDaemon) -> None:
    page.goto(f"http://127.0.0.1:{daemon.ports['http']}/webmail/")
    page.fill("form.login input[name=username]", "alice@example.org")
    page.fill("form.login input[name=password]", "alicepass")
    page.click("form.login button[type=submit]")
    page.wait_for_selector("#list-title:has-text('INBOX')")


def api(daemon: RunningDaemon) -> WebmailClient:
    return WebmailClient(daemon.ports["http"]).login()


def open_row(page: Any, subject: str) -> None:
    page.click(f"#messages li.msg:has-text({subject!r})")
    page.wait_for_selector(f"#view h1.subject:has-text({subject!r})")


def imap_messages(daemon: RunningDaemon, user: str, password: str, mailbox: str, subject: str) -> list[bytes]:
    imap = imaplib.IMAP4("127.0.0.1", daemon.ports["imap"])
    imap.starttls(daemon.ssl_context())
    imap.login(user, password)
    try:
        imap.select(mailbox)
        _, data = imap.search(None, "SUBJECT", f'"{subject}"')
        out = []
        for num in data[0].split():
            _, fetched = imap.fetch(num, "(RFC822)")
            out.append(fetched[0][1])  # type: ignore[index]
        return out  # type: ignore[return-value]
    finally:
        imap.logout()


def wait_imap(daemon: RunningDaemon, user: str, password: str, mailbox: str, subject: str) -> bytes:
    deadline = time.monotonic() + 20
    while not (found := imap_messages(daemon, user, password, mailbox, subject)):
        assert time.monotonic() < deadline, f"{subject} not in {user}'s {mailbox}"
        time.sleep(0.2)
    return found[-1]


def no_prompt(page: Any) -> None:
    page.wait_for_selector("#status:has-text('Moved')")
    page.wait_for_timeout(500)
    assert page.query_selector("#rule-prompt") is None


def move_open_message(page: Any, dest: str) -> None:
    page.select_option("#move-to", dest)


# --- reading -----------------------------------------------------------------------------------


def test_read_text_message(daemon: RunningDaemon, page: Any) -> None:
    deliver(daemon, "plain words", body="Hi Alice,\r\nsee https://example.net/page\r\n> you wrote\r\nbye\r\n")
    page.wait_for_selector("#messages li.msg:has-text('plain words')")
    open_row(page, "plain words")
    assert page.get_attribute("#view .text-body a", "href") == "https://example.net/page"
    assert page.inner_text("#view .text-body blockquote").strip() == "you wrote"
    assert "From not verified" in page.inner_text("#view .headers")
    shot(page, "webmail-reading.png")


def test_html_message_no_script_and_remote_image_only_when_allowed(
    daemon: RunningDaemon, page: Any, counter: int
) -> None:
    remote = f"http://127.0.0.1:{counter}"
    html = (
        f'<p>Offer</p><script>new Image().src="{remote}/script.gif"</script>'
        f'<img src="{remote}/tracker.gif"><img src="x" onerror="new Image().src=\'{remote}/onerror.gif\'">'
        f'<div style="background:url({remote}/css.gif)">styled</div>'
    )
    deliver(daemon, "html offer", body=html, sender="shop@shop.example", extra="Content-Type: text/html\r\n")
    page.wait_for_selector("#messages li.msg:has-text('html offer')")
    open_row(page, "html offer")
    frame = page.frame_locator("#html-frame")
    frame.locator("text=Offer").wait_for()
    page.wait_for_timeout(1000)
    assert Counter.hits == {}, Counter.hits
    assert "remote resource" in page.inner_text("#remote-bar")
    page.click("#load-remote")
    page.frame_locator("#html-frame").locator("text=Offer").wait_for()
    deadline = time.monotonic() + 10
    while Counter.hits.get("/tracker.gif", 0) < 1:
        assert time.monotonic() < deadline, Counter.hits
        time.sleep(0.1)
    page.wait_for_timeout(500)
    assert "/script.gif" not in Counter.hits and "/onerror.gif" not in Counter.hits
    # "Always for this sender" is remembered: the next open loads at once.
    open_row(page, "html offer")
    page.click("#allow-sender")
    page.wait_for_selector("#remote-bar", state="detached")
    assert api(daemon).call("Message", wait_for(api(daemon), "html offer")["id"])["remote_allowed"]


# --- writing -----------------------------------------------------------------------------------


def test_compose_with_attachment_arrives_intact_over_imap(daemon: RunningDaemon, page: Any) -> None:
    payload = bytes(range(256)) * 40
    page.click("#compose")
    page.fill("#compose-to", "Bob <bob@example.org>")
    page.fill("#compose-subject", "with a file")
    page.fill("#compose-text", "See the attachment.")
    upload = {"name": "data.bin", "mimeType": "application/octet-stream", "buffer": payload}
    page.set_input_files("#compose-files", files=[upload])
    page.wait_for_selector(".compose-attachments li:has-text('data.bin'):not(.uploading)")
    shot(page, "webmail-compose.png")
    page.click("#compose-send")
    page.wait_for_selector("#compose-window", state="detached")
    raw = wait_imap(daemon, "bob@example.org", "bobpass", "INBOX", "with a file")
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    (attachment,) = list(msg.iter_attachments())  # type: ignore[attr-defined]
    assert attachment.get_filename() == "data.bin" and attachment.get_content() == payload
    assert wait_imap(daemon, "alice@example.org", "alicepass", "Sent", "with a file")


def test_send_later_from_the_compose_form(daemon: RunningDaemon, page: Any) -> None:
    at = (int(time.time()) // 60 + 120) * 60  # two hours ahead, on a minute: the input's precision
    page.click("#compose")
    page.fill("#compose-to", "later@remote.example")
    page.fill("#compose-subject", "sent later")
    page.fill("#compose-text", "Not yet.")
    page.fill("#compose-send-at", time.strftime("%Y-%m-%dT%H:%M", time.localtime(at)))  # the browser's zone is ours
    page.click("#compose-send")
    page.wait_for_selector("#compose-window", state="detached")
    page.wait_for_selector("#status:has-text('Will be sent')")
    [queued] = [m for m in daemon.cli_json("queue", "list") if m["recipients"][0]["address"] == "later@remote.example"]
    assert queued["next_attempt"] == at, queued
    daemon.cli_ok("queue", "drop", "--recipient", "later@remote.example")


def set_send_at(page: Any, at: int) -> None:
    """The compose form's send-later time, to the second: a short wait for the test (the input
    offers minutes; step "any" lets the form's validation take seconds)."""
    value = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(at))  # the browser's zone is ours
    page.eval_on_selector(
        "#compose-send-at",
        "(el, v) => { el.setAttribute('step', 'any'); el.value = v;"
        " el.dispatchEvent(new Event('input', {bubbles: true})) }",
        value,
    )


def test_send_later_reaches_nobody_before_its_time_then_both(
    daemon: RunningDaemon, page: Any, sink: RecordingSink
) -> None:
    at = int(time.time()) + 20
    page.click("#compose")
    page.fill("#compose-to", "bob@example.org, far@remote.example")
    page.fill("#compose-subject", "later for both")
    page.fill("#compose-text", "At its time.")
    set_send_at(page, at)
    page.click("#compose-send")
    page.wait_for_selector("#compose-window", state="detached")
    page.wait_for_selector("#status:has-text('Will be sent')")
    page.click("#scheduled-link")
    item = page.wait_for_selector("#scheduled li.scheduled-item:has-text('later for both')")
    assert "bob@example.org" in item.inner_text() and "far@remote.example" in item.inner_text()
    shot(page, "webmail-scheduled.png")
    # Before its time: neither the local recipient (IMAP) nor the other server has it, no Sent copy.
    assert imap_messages(daemon, "bob@example.org", "bobpass", "INBOX", "later for both") == []
    assert imap_messages(daemon, "alice@example.org", "alicepass", "Sent", "later for both") == []
    assert not [r for r in sink.records() if b"later for both" in r.data]
    assert time.time() < at, "the checks took too long to prove anything"
    # At its time: both.
    wait_until(lambda: [r for r in sink.records() if b"later for both" in r.data], timeout=60, what="the remote copy")
    (remote,) = [r for r in sink.records() if b"later for both" in r.data]
    assert remote.time >= at and remote.recipients == ("far@remote.example",)
    raw = wait_imap(daemon, "bob@example.org", "bobpass", "INBOX", "later for both")
    assert b"At its time." in raw
    assert wait_imap(daemon, "alice@example.org", "alicepass", "Sent", "later for both")
    page.click("#scheduled-link")
    page.wait_for_selector("#view p.empty:has-text('Nothing scheduled')")


def test_cancel_a_scheduled_message_returns_it_to_drafts(daemon: RunningDaemon, page: Any) -> None:
    at = (int(time.time()) // 60 + 90) * 60
    page.click("#compose")
    page.fill("#compose-to", "bob@example.org")
    page.fill("#compose-subject", "changed my mind")
    page.fill("#compose-text", "Maybe not.")
    set_send_at(page, at)
    page.click("#compose-send")
    page.wait_for_selector("#compose-window", state="detached")
    page.click("#scheduled-link")
    item = page.wait_for_selector("#scheduled li.scheduled-item:has-text('changed my mind')")
    item.query_selector("button.scheduled-cancel").click()
    page.wait_for_selector("#compose-window")
    assert page.input_value("#compose-subject") == "changed my mind"
    assert page.input_value("#compose-text").strip() == "Maybe not."
    assert page.input_value("#compose-send-at") == time.strftime("%Y-%m-%dT%H:%M", time.localtime(at))
    client = api(daemon)
    assert client.call("Scheduled") == []
    drafts = {b["name"]: b for b in client.call("Mailboxes")["mailboxes"]}["Drafts"]
    assert drafts["messages"] == 1
    page.click("#compose-close")
    assert imap_messages(daemon, "bob@example.org", "bobpass", "INBOX", "changed my mind") == []
    client.call("MailboxEmpty", drafts["id"])


def test_draft_keeps_its_send_later_time_and_options(daemon: RunningDaemon, page: Any) -> None:
    at = (int(time.time()) // 60 + 180) * 60
    page.click("#compose")
    page.select_option("#compose-from", "team@example.org")
    page.fill("#compose-to", "bob@example.org")
    page.fill("#compose-subject", "for later")
    page.fill("#compose-text", "Draft.")
    page.fill("#compose-send-at", time.strftime("%Y-%m-%dT%H:%M", time.localtime(at)))
    page.check("#compose-window input[name=requiretls]")
    page.click("#compose-save")
    page.wait_for_selector(".compose-info:has-text('Draft saved')")
    page.click("#compose-close")
    page.click("#mailboxes .mailbox[data-name='Drafts']")
    open_row(page, "for later")
    page.click("#edit-draft")
    page.wait_for_selector("#compose-window")
    assert page.input_value("#compose-send-at") == time.strftime("%Y-%m-%dT%H:%M", time.localtime(at))
    assert page.is_checked("#compose-window input[name=requiretls]")
    assert page.input_value("#compose-from") == "team@example.org"
    page.click("#compose-close")
    client = api(daemon)
    drafts = {b["name"]: b for b in client.call("Mailboxes")["mailboxes"]}["Drafts"]
    client.call("MailboxEmpty", drafts["id"])


def test_reply_keeps_in_reply_to_and_references(daemon: RunningDaemon, page: Any) -> None:
    extra = "Message-ID: <q1@elsewhere.example>\r\nReferences: <q0@elsewhere.example>\r\n"
    deliver(daemon, "question", body="Can you?\r\n", sender="bob@example.org", extra=extra)
    page.wait_for_selector("#messages li.msg:has-text('question')")
    open_row(page, "question")
    page.click("#reply")
    page.wait_for_selector("#compose-window")
    assert page.input_value("#compose-to") == "bob@example.org"
    assert page.input_value("#compose-subject") == "Re: question"
    assert "> Can you?" in page.input_value("#compose-text")
    page.fill("#compose-text", "Yes.\n" + page.input_value("#compose-text"))
    page.click("#compose-send")
    page.wait_for_selector("#compose-window", state="detached")
    raw = wait_imap(daemon, "bob@example.org", "bobpass", "INBOX", "Re: question")
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["In-Reply-To"] == "<q1@elsewhere.example>"
    assert str(msg["References"]).split() == ["<q0@elsewhere.example>", "<q1@elsewhere.example>"]


def test_draft_saved_and_reopened(daemon: RunningDaemon, page: Any) -> None:
    page.click("#compose")
    page.fill("#compose-to", "bob@example.org")
    page.fill("#compose-subject", "half written")
    page.fill("#compose-text", "To be continued")
    page.click("#compose-save")
    page.wait_for_selector(".compose-info:has-text('Draft saved')")
    page.click("#compose-close")
    page.click("#mailboxes .mailbox[data-name='Drafts']")
    open_row(page, "half written")
    page.click("#edit-draft")
    page.wait_for_selector("#compose-window")
    assert page.input_value("#compose-subject") == "half written"
    assert page.input_value("#compose-text").strip() == "To be continued"
    assert page.input_value("#compose-to") == "bob@example.org"
    page.fill("#compose-text", "Finished")
    page.click("#compose-send")
    page.wait_for_selector("#compose-window", state="detached")
    assert b"Finished" in wait_imap(daemon, "bob@example.org", "bobpass", "INBOX", "half written")
    client = api(daemon)
    drafts = {b["name"]: b for b in client.call("Mailboxes")["mailboxes"]}["Drafts"]
    assert drafts["messages"] == 0  # the draft went when it was sent


# --- searching and live updates ---------------------------------------------------------------


def test_search_with_operators(daemon: RunningDaemon, page: Any) -> None:
    attached = "Content-Type: multipart/mixed; boundary=z\r\n"
    body = (
        "--z\r\nContent-Type: text/plain\r\n\r\nthe quarterly numbers\r\n--z\r\nContent-Type: application/pdf\r\n"
        "Content-Disposition: attachment; filename=q.pdf\r\n\r\n%PDF\r\n--z--\r\n"
    )
    deliver(daemon, "numbers with file", body=body, sender="dave@numbers.example", extra=attached)
    deliver(daemon, "numbers without file", body="the quarterly numbers\r\n", sender="dave@numbers.example")
    deliver(daemon, "unrelated", body="quarterly\r\n", sender="erin@other.example")
    page.wait_for_selector("#messages li.msg:has-text('unrelated')")
    page.fill("#q", "from:dave has:attachment quarterly")
    page.press("#q", "Enter")
    page.wait_for_selector("#list-title:has-text('Search')")
    page.wait_for_selector("#messages li.msg:has-text('numbers with file')")
    rows = page.inner_text("#messages")
    assert "numbers without file" not in rows and "unrelated" not in rows
    page.fill("#q", "quarterly -from:dave")
    page.press("#q", "Enter")
    page.wait_for_selector("#messages li.msg:has-text('unrelated')")
    assert "numbers" not in page.inner_text("#messages")


def test_smtp_delivery_appears_without_reload(daemon: RunningDaemon, page: Any) -> None:
    page.wait_for_timeout(500)  # the event stream is connected
    start = time.monotonic()
    deliver(daemon, "arrives live")
    page.wait_for_selector("#messages li.msg:has-text('arrives live')", timeout=10_000)
    elapsed = time.monotonic() - start
    print(f"SMTP 250 to the row on screen: {elapsed * 1000:.0f} ms")
    assert elapsed < 5
    assert page.inner_text("#mailboxes .mailbox[data-name='INBOX'] .count")


# --- "make a rule?" ------------------------------------------------------------------------


def test_make_a_rule_flow(daemon: RunningDaemon, page: Any) -> None:
    client = api(daemon)
    client.call("MailboxCreate", "Done")
    page.reload()
    page.wait_for_selector("#mailboxes .mailbox[data-name='Done']")
    # Out of the Inbox → prompt → yes → the next delivery lands there.
    deliver(daemon, "from erin 1", sender="erin@elsewhere.example")
    page.wait_for_selector("#messages li.msg:has-text('from erin 1')")
    open_row(page, "from erin 1")
    move_open_message(page, "Done")
    page.wait_for_selector("#rule-prompt")
    assert "erin@elsewhere.example" in page.inner_text("#rule-prompt")
    shot(page, "webmail-rule-prompt.png")
    page.click("#rule-yes")
    page.wait_for_selector("#rule-prompt", state="detached")
    page.wait_for_selector("#status:has-text('Rule created')")
    deliver(daemon, "from erin 2", sender="erin@elsewhere.example")
    wait_for(client, "from erin 2", mailbox="Done")
    # "No, not for this sender" → no prompt next time.
    deliver(daemon, "from frank 1", sender="frank@elsewhere.example")
    page.wait_for_selector("#messages li.msg:has-text('from frank 1')")
    open_row(page, "from frank 1")
    move_open_message(page, "Done")
    page.wait_for_selector("#rule-prompt")
    page.click("#rule-no-sender")
    deliver(daemon, "from frank 2", sender="frank@elsewhere.example")
    page.wait_for_selector("#messages li.msg:has-text('from frank 2')")
    open_row(page, "from frank 2")
    move_open_message(page, "Done")
    no_prompt(page)
    # A List-Id message from a verified domain → a list rule.
    daemon.dns.add("lists.example.net", "TXT", "v=spf1 ip4:127.0.0.1 -all")
    list_id = "List-Id: Dev talk <dev.lists.example.net>\r\n"
    deliver(daemon, "list post 1", sender="poster@lists.example.net", extra=list_id)
    page.wait_for_selector("#messages li.msg:has-text('list post 1')")
    open_row(page, "list post 1")
    move_open_message(page, "Done")
    page.wait_for_selector("#rule-prompt")
    text = page.inner_text("#rule-prompt")
    assert "dev.lists.example.net" in text and "lists.example.net" in text
    page.click("#rule-yes")
    page.wait_for_selector("#status:has-text('Rule created')")
    deliver(daemon, "list post 2", sender="other@lists.example.net", extra=list_id)
    wait_for(client, "list post 2", mailbox="Done")
    # A move to Trash never asks.
    deliver(daemon, "from gina", sender="gina@elsewhere.example")
    page.wait_for_selector("#messages li.msg:has-text('from gina')")
    open_row(page, "from gina")
    move_open_message(page, "Trash")
    no_prompt(page)


# --- phone width ----------------------------------------------------------------------------


def test_phone_width_one_pane_at_a_time(daemon: RunningDaemon, browser: Any) -> None:
    deliver(daemon, "on a phone", body="one pane at a time\r\n")  # its own message: no reliance on earlier tests
    context = browser.new_context(viewport={"width": 390, "height": 800}, is_mobile=True)
    page = context.new_page()
    try:
        login(page, daemon)
        page.wait_for_selector("#messages li.msg")
        assert not page.is_visible("#mailboxes") and not page.is_visible("#view")
        shot(page, "webmail-phone-list.png")
        page.click("#messages li.msg >> nth=0")
        page.wait_for_selector("#view h1.subject")
        assert not page.is_visible("#list")
        shot(page, "webmail-phone-message.png")
        page.click("#view .back")
        assert page.is_visible("#list")
        page.click("#menu")
        assert page.is_visible("#mailboxes")
    finally:
        context.close()


def test_keyboard_shortcuts_listed_on_question_mark(daemon: RunningDaemon, page: Any) -> None:
    deliver(daemon, "shortcut target", body="for the keyboard\r\n")
    page.wait_for_selector("#messages li.msg")
    page.keyboard.press("?")
    page.wait_for_selector("#shortcuts")
    assert "reply all" in page.inner_text("#shortcuts")
    page.keyboard.press("Escape")
    page.wait_for_selector("#shortcuts", state="detached")
    page.keyboard.press("j")
    page.wait_for_selector("#view h1.subject")
    page.keyboard.press("c")
    page.wait_for_selector("#compose-window")
