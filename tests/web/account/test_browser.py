"""The account page in a real browser (Playwright on Debian's chromium) against the daemon:
login and logout, an expired session and a refused CSRF token bring the login form back,
a password change logs out the account's other sessions, each section works, import shows
its progress, and an export downloads what the import put in."""

from __future__ import annotations

import io
import sqlite3
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.daemon import RunningDaemon
from tests.storeguard import assert_no_violation, guarded_daemon
from tests.web.apiclient import ApiClient

# One worker runs the whole module: one daemon and one browser for its tests (the fixtures are
# per module), and tests that build on the mail of earlier ones see it.
pytestmark = pytest.mark.xdist_group("account_browser")

PREFIX = "/webaccount/"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDaemon]:
    accounts = {
        "alice": ("alice@example.org", "alicepass"),
        "bob": ("bob@example.org", "bobpass"),
        "carol": ("carol@example.org", "carolpass"),
        "dave": ("dave@example.org", "davepass"),
    }
    webapi = "\n[web]\nwebapi_enabled = true\n"  # for the tokens made on the page
    d: RunningDaemon = guarded_daemon(tmp_path_factory.mktemp("account") / "d", accounts=accounts, extra_static=webapi)
    try:
        yield d
    finally:
        d.stop()
        assert_no_violation(d)


def _url(daemon: RunningDaemon) -> str:
    return f"http://127.0.0.1:{daemon.ports['http']}{PREFIX}"


def _login(page: Any, address: str, password: str) -> None:
    page.fill("form.login input[name=username]", address)
    page.fill("form.login input[name=password]", password)
    page.click("form.login button[type=submit]")
    page.wait_for_selector("#account-name")


def _open(page: Any, daemon: RunningDaemon, address: str, password: str) -> None:
    page.goto(_url(daemon))
    _login(page, address, password)


def _status(page: Any, section: str, text: str) -> None:
    page.wait_for_selector(f"#{section} .status:has-text('{text}')")


def _api(daemon: RunningDaemon, address: str, password: str) -> ApiClient:
    client = ApiClient.for_daemon(daemon, PREFIX)
    client.login(address, password)
    return client


def test_login_sections_and_logout(page: Any, daemon: RunningDaemon) -> None:
    page.goto(_url(daemon))
    page.fill("form.login input[name=username]", "alice@example.org")
    page.fill("form.login input[name=password]", "wrong")
    page.click("form.login button[type=submit]")
    page.wait_for_selector("form.login :text('authentication failed')")
    _login(page, "alice@example.org", "alicepass")
    assert page.text_content("#account-name") == "alice"
    for section in (
        "overview",
        "password",
        "clients",
        "keys",
        "rules",
        "junk",
        "retired",
        "fromid",
        "suppressions",
        "webhooks",
        "apitokens",
        "import",
        "export",
    ):
        assert page.locator(f"section#{section} h2").count() == 1, section
    assert "1993" not in page.text_content("#endpoints")  # the test daemon's own ports are shown
    assert str(daemon.ports["imaps"]) in page.text_content("#endpoints")
    page.reload()
    page.wait_for_selector("#account-name")  # the session and CSRF token survive a reload
    page.click("#logout")
    page.wait_for_selector("form.login")


def test_expired_session_and_refused_csrf_ask_for_login_again(page: Any, daemon: RunningDaemon) -> None:
    _open(page, daemon, "alice@example.org", "alicepass")
    # A wrong CSRF token (as a forged request would have): the API refuses, the page asks again.
    page.evaluate("localStorage.setItem('mailsrv-account-csrf', 'forged')")
    page.reload()
    page.wait_for_selector("form.login")
    _login(page, "alice@example.org", "alicepass")
    page.wait_for_load_state("networkidle")  # every section has loaded
    # The session expires (idle too long): the next call brings the login form back.
    db = sqlite3.connect(daemon.data_dir / "websessions.db")
    with db:
        db.execute("UPDATE session SET last_used = last_used - 10 * 86400, created = created - 10 * 86400")
    db.close()
    page.fill("#fullname-form input[name=full_name]", "After Expiry")
    page.click("#fullname-form button[type=submit]")
    page.wait_for_selector("form.login")
    _login(page, "alice@example.org", "alicepass")
    _status(page, "overview", "Saved")  # the refused call was retried after the login
    assert _api(daemon, "alice@example.org", "alicepass").call("Account")["full_name"] == "After Expiry"


def test_password_change_logs_out_other_sessions(browser: Any, page: Any, daemon: RunningDaemon) -> None:
    _open(page, daemon, "carol@example.org", "carolpass")
    other_context = browser.new_context()
    other = other_context.new_page()
    try:
        _open(other, daemon, "carol@example.org", "carolpass")
        page.fill("#password-form input[name=current]", "carolpass")
        page.fill("#password-form input[name=new]", "carol-new-pass")
        page.fill("#password-form input[name=repeat]", "carol-new-pass")
        page.click("#password-form button[type=submit]")
        _status(page, "password", "other sessions are logged out")
        other.reload()
        other.wait_for_selector("form.login")
        page.reload()
        page.wait_for_selector("#account-name")  # this session stays
    finally:
        other_context.close()


def test_keys_rules_junk_and_sending_sections(page: Any, daemon: RunningDaemon) -> None:
    page.on("dialog", lambda dialog: dialog.accept())
    _open(page, daemon, "bob@example.org", "bobpass")
    page.fill("#fullname-form input[name=full_name]", "Bob Builder")
    page.click("#fullname-form button[type=submit]")
    _status(page, "overview", "Saved")

    # Generate a key: the .p12 downloads, the key is listed, then removed.
    page.fill("#key-generate input[name=name]", "laptop")
    with page.expect_download() as download:
        page.click("#key-generate button[type=submit]")
    assert download.value.suggested_filename == "laptop.p12"
    page.wait_for_selector("#key-commands pre:has-text('openssl genpkey')")
    page.wait_for_selector("#keys-list td:has-text('laptop')")
    page.click("#keys-list button.remove")
    page.wait_for_selector("#keys-list :text('No keys registered.')")

    # Rules: add two, edit one, move, remove.
    for comment, pattern in (("first", "@one\\.example$"), ("second", "@two\\.example$")):
        page.fill("#rule-form input[name=comment]", comment)
        page.fill("#rule-form input[name=msg_from]", pattern)
        page.fill("#rule-form input[name=mailbox]", comment.title())
        page.click("#rule-form button[type=submit]")
        page.wait_for_selector(f"#rules-list .comment:has-text('{comment}')")
    page.click("#rules-list li:nth-child(2) button:has-text('Edit')")
    page.fill("#rule-form input[name=comment]", "second edited")
    page.click("#rule-form button[type=submit]")
    page.wait_for_selector("#rules-list .comment:has-text('second edited')")
    page.click("#rules-list li:nth-child(2) button:has-text('↑')")
    page.wait_for_selector("#rules-list li:nth-child(1) .comment:has-text('second edited')")
    page.click("#rules-list li:nth-child(2) button:has-text('Remove')")
    expect(page.locator("#rules-list li")).to_have_count(1)
    # A bad regexp is refused with the server's message.
    page.fill("#rule-form input[name=msg_from]", "(")
    page.fill("#rule-form input[name=mailbox]", "X")
    page.click("#rule-form button[type=submit]")
    page.wait_for_selector("#rules .status.error")

    # Junk filter off; keep period; fromid; a suppression.
    page.wait_for_selector("#junk-stats:has-text('0 words known')")
    page.uncheck("#junk-form input[name=enabled]")
    page.click("#junk-form button[type=submit]")
    _status(page, "junk", "Saved")
    page.fill("#retired-form input[name=retired_keep]", "2d")
    page.click("#retired-form button[type=submit]")
    page.wait_for_selector("#retired-form input[name=retired_keep][value='2d']")
    page.check("#fromid-form input[value='bob@example.org']")
    page.click("#fromid-form button[type=submit]")
    page.wait_for_selector("#fromid-form input[value='bob@example.org']:checked")
    page.fill("#suppression-add input[name=address]", "Gone+x@example.net")
    page.fill("#suppression-add input[name=reason]", "left the company")
    page.click("#suppression-add button[type=submit]")
    page.wait_for_selector("#suppressions-list td:has-text('left the company')")
    page.click("#suppressions-list button:has-text('Remove')")
    page.wait_for_selector("#suppressions-list :text('The list is empty.')")

    # Webhooks: an outgoing one for two events, then a signing secret shown once.
    page.fill("#webhook-outgoing input[name=outgoing_url]", "https://hooks.example.com/mail")
    page.check("#webhook-outgoing input[value=delivered]")
    page.check("#webhook-outgoing input[value=failed]")
    page.click("#webhook-outgoing button[type=submit]")
    _status(page, "webhooks", "Saved")
    page.click("#webhook-rotate")
    page.wait_for_selector("#webhook-secret pre:has-text('whsec_')")

    bob = _api(daemon, "bob@example.org", "bobpass")
    account = bob.call("Account")
    assert account["full_name"] == "Bob Builder" and account["retired_keep"] == 2 * 86400
    assert account["fromid_login_addresses"] == ["bob@example.org"]
    assert bob.call("JunkSettings")["enabled"] is False
    assert [r["comment"] for r in bob.call("Rulesets")] == ["second edited"]
    hooks = bob.call("Webhooks")["settings"]
    assert hooks["outgoing_url"] == "https://hooks.example.com/mail" and hooks["has_secret"]
    assert hooks["outgoing_events"] == ["delivered", "failed"]
    with page.expect_download() as profile:
        page.click("#apple-profile")
    assert profile.value.suggested_filename == "bob@example.org.mobileconfig"


def _mbox(count: int) -> bytes:
    filler = b"All work and no play makes a test message long enough. " * 40 + b"\n"
    return b"".join(
        b"From sender@example.net Sat Jan  3 01:05:34 2026\nStatus: RO\nSubject: imported %d\n\n" % n
        + filler * 3
        + b"\n"
        for n in range(count)
    )


def test_import_with_progress_then_export_round_trip(page: Any, daemon: RunningDaemon) -> None:
    _open(page, daemon, "alice@example.org", "alicepass")
    data = _mbox(1500)  # ~10 MB: several batches, so progress lines arrive before the result
    page.fill("#import-form input[name=mailbox]", "Imported")
    page.set_input_files(
        "#import-form input[type=file]", files=[{"name": "old.mbox", "mimeType": "application/mbox", "buffer": data}]
    )
    seen: list[str] = []
    page.expose_function("noteProgress", lambda text: seen.append(text))
    page.evaluate(
        """() => new MutationObserver(() => window.noteProgress(document.getElementById('import-text').textContent))
            .observe(document.getElementById('import-text'), {childList: true, characterData: true, subtree: true})"""
    )
    page.click("#import-form button[type=submit]")
    page.wait_for_selector("#import-text:has-text('done: 1500 messages imported')", timeout=120_000)
    assert page.get_attribute("#import-progress", "value") == page.get_attribute("#import-progress", "max")
    assert any(text.startswith("importing:") for text in seen), seen[:5]
    page.wait_for_selector("#import-result :text('Into: Imported')")

    page.reload()
    page.wait_for_selector("#export-form option[value='Imported']", state="attached")
    page.select_option("#export-form select[name=mailbox]", "Imported")
    page.select_option("#export-form select[name=format]", "mbox")
    page.select_option("#export-form select[name=archive]", "zip")
    with page.expect_download() as download:
        page.click("#export-form button[type=submit]")
    path = download.value.path()
    assert path is not None
    archive = zipfile.ZipFile(io.BytesIO(open(path, "rb").read()))
    assert archive.namelist() == ["Imported.mbox"]
    mbox = archive.read("Imported.mbox")
    assert mbox.count(b"\nSubject: imported ") == 1500 and mbox.count(b"Status: RO\n") == 1500


def test_api_token_made_used_and_revoked(page: Any, daemon: RunningDaemon) -> None:
    """A token created on the page is shown once, works as the webapi's Basic password, is listed
    with its last use, and stops working when removed there."""
    import base64
    import json
    import urllib.error
    import urllib.request

    def call(token: str) -> int:
        basic = base64.b64encode(f"dave@example.org:{token}".encode()).decode()
        url = f"http://127.0.0.1:{daemon.ports['http']}/webapi/v0/SuppressionList"
        headers = {"Authorization": f"Basic {basic}", "Content-Type": "application/json"}
        try:
            with urllib.request.urlopen(urllib.request.Request(url, b"{}", headers)) as r:
                assert json.load(r) == {"Suppressions": []}
                return int(r.status)
        except urllib.error.HTTPError as e:
            return e.code

    _open(page, daemon, "dave@example.org", "davepass")
    page.wait_for_selector("#apitokens-list :text('No tokens.')")
    page.fill("#apitoken-add input[name=name]", "invoicing")
    page.fill("#apitoken-add input[name=days]", "30")
    page.click("#apitoken-add button[type=submit]")
    _status(page, "apitokens", "Token created.")
    token = page.text_content("#apitoken-secret") or ""
    assert token.startswith("mailsrv_")
    page.wait_for_selector("#apitokens-list td.token-name:has-text('invoicing')")
    assert call(token) == 200
    page.reload()
    page.wait_for_selector("#apitokens-list td.token-name:has-text('invoicing')")
    assert page.locator("#apitoken-secret").count() == 0  # shown once only
    assert "never" not in (page.text_content("#apitokens-list tbody tr") or "")  # used, and expires
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#apitokens-list button:has-text('Remove')")
    page.wait_for_selector("#apitokens-list :text('No tokens.')")
    assert call(token) == 401
