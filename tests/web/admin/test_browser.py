"""The admin interface in a real browser (Playwright on Debian's chromium) against the daemon:
login and logout, adding a domain and seeing its DNS check, creating an account and logging in
to the account page with its generated password, an alias with members, and the queue: paging
over 1,000 queued messages with a filter and a bulk hold and release.

With MAILSRV_SCREENSHOTS=1 the tests also write docs/web/admin-*.png (the docs' pictures)."""

from __future__ import annotations

import os
import smtplib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import Deferred, succeed

from mailsrv.address import Address
from mailsrv.auth import adminpassword
from mailsrv.auth.passwords import PasswordHasher
from mailsrv.queue.interfaces import QueueFilter
from mailsrv.queue.store import SQLiteOutgoingQueue
from tests.daemon import RunningDaemon, write_config
from tests.message.reportsamples import dmarc_message

# One worker runs the whole module: one daemon and one browser for its tests (the fixtures are
# per module), and tests that build on the mail of earlier ones see it.
pytestmark = pytest.mark.xdist_group("admin_browser")

PREFIX = "/webadmin/"
PASSWORD = "admin-secret-1"
QUEUED = 1000
DOMAINS = 10  # recipients spread over dest0..dest9.example: 100 messages each
SCREENSHOTS = Path(__file__).resolve().parents[3] / "docs" / "web"


def _inline(f: Any, *args: Any) -> Deferred[Any]:
    return succeed(f(*args))


def _fill_queue(data_dir: Path) -> None:
    """1,000 messages queued through the queue's own API before the daemon starts, their next
    attempt a day away (so the runner leaves them alone while the test pages through them)."""
    queue = SQLiteOutgoingQueue(data_dir, run_fsync=_inline, run_files=_inline)
    try:
        sender = Address.parse("alice@example.org")
        for i in range(QUEUED):
            rcpt = [Address.parse(f"user{i}@dest{i % DOMAINS}.example")]
            queue.enqueue(sender, rcpt, b"Subject: queued\r\n\r\nbody\r\n", "alice", False)
        queue.set_next_attempt(QueueFilter(), time.time() + 86400)
    finally:
        queue.close()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDaemon]:
    # A relay for dest7.example: the queue filled below (before the routes existed) gets its
    # transports when the daemon starts, and the queue page filters and changes them.
    relay = '\n[transports.relay]\nkind = "smtp"\nhost = "192.0.2.1"\n'
    relay += '\n[[routes]]\nrecipient_domains = ["dest7.example"]\ntransport = "relay"\n'
    d = write_config(tmp_path_factory.mktemp("admin") / "d", extra_static=relay)
    adminpassword.set_password(d.data_dir, PASSWORD, PasswordHasher.for_tests())
    _fill_queue(d.data_dir)
    d.start()
    try:
        yield d
    finally:
        d.stop()


def _url(daemon: RunningDaemon, prefix: str = PREFIX) -> str:
    return f"http://127.0.0.1:{daemon.ports['http']}{prefix}"


def _login(page: Any, daemon: RunningDaemon) -> None:
    page.goto(_url(daemon))
    page.fill("form.login input[name=username]", "admin")
    page.fill("form.login input[name=password]", PASSWORD)
    page.click("form.login button[type=submit]")
    page.wait_for_selector("#who:has-text('Logged in as admin')")


def _screenshot(page: Any, name: str) -> None:
    if os.environ.get("MAILSRV_SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.set_viewport_size({"width": 1280, "height": 900})
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(SCREENSHOTS / name), full_page=False)


def test_login_and_logout(page: Any, daemon: RunningDaemon) -> None:
    page.goto(_url(daemon))
    page.fill("form.login input[name=username]", "admin")
    page.fill("form.login input[name=password]", "wrong")
    page.click("form.login button[type=submit]")
    page.wait_for_selector("form.login .login-status:has-text('authentication failed')")
    page.fill("form.login input[name=password]", PASSWORD)
    page.click("form.login button[type=submit]")
    page.wait_for_selector("#who:has-text('Logged in as admin')")
    page.wait_for_selector("#counts :text('Messages queued')")
    assert page.text_content("#counts") is not None and str(QUEUED) in (page.text_content("#counts") or "")
    page.reload()  # the session survives a reload
    page.wait_for_selector("#who:has-text('Logged in as admin')")
    page.click("#logout")
    page.wait_for_selector("form.login")
    assert page.locator("#who").text_content() == ""


def test_add_a_domain_and_see_its_dns_check(page: Any, daemon: RunningDaemon) -> None:
    assert daemon.dns is not None
    daemon.dns.add("shop.example", "MX", "10 mail.example.org.")
    daemon.dns.add("mail.example.org", "A", "127.0.0.1")
    _login(page, daemon)
    page.click("nav a:has-text('Domains')")
    page.fill("#domain-add input[name=domain]", "shop.example")
    page.click("#domain-add button[type=submit]")
    page.wait_for_selector("text=Publish the DKIM records of shop.example")
    assert page.locator("text=_domainkey.shop.example.").count() == 2
    page.click("#domains a:has-text('DNS check') >> nth=1")
    page.wait_for_selector("#dns-check table.check")
    rows = page.locator("#dns-check table.check tbody tr")
    texts = [rows.nth(i).inner_text() for i in range(rows.count())]
    mx = next(t for t in texts if "\tMX\t" in f"\t{t}")
    assert mx.startswith("OK")
    spf = next(t for t in texts if "SPF" in t)
    assert spf.startswith("Error") and "v=spf1 mx -all" in spf
    _screenshot(page, "admin-dnscheck.png")
    page.fill("#domain-settings input[name=separator]", "-")
    page.click("#domain-settings button:has-text('Save')")
    page.wait_for_selector("p.status:has-text('Settings saved.')")


def test_edit_a_domains_reporting_and_mta_sts_settings(page: Any, daemon: RunningDaemon) -> None:
    _login(page, daemon)
    page.goto(_url(daemon) + "#domain/example.org")
    page.wait_for_selector("#mta-sts-policy:has-text('mode testing')")
    page.fill("#domain-settings input[name=dmarc_reports]", "nobody@example.org")
    page.click("#domain-settings button[type=submit]")
    page.wait_for_selector("p.status.error:has-text('no account has the address nobody@example.org')")
    page.fill("#domain-settings input[name=dmarc_reports]", "alice+dmarc@example.org")
    page.fill("#domain-settings input[name=tlsrpt_reports]", "alice+tls@example.org")
    page.select_option("#domain-settings select[name=mta_sts_mode]", "enforce")
    page.fill("#domain-settings input[name=mta_sts_max_age]", "86400")
    page.click("#domain-settings button[type=submit]")
    page.wait_for_selector("p.status:has-text('Settings saved.')")
    page.wait_for_selector("#mta-sts-policy:has-text('mode enforce, max_age 86400 s')")
    # The DNS check runs again and asks for the new rua= addresses.
    page.wait_for_selector("#dns-check td:has-text('rua=mailto:alice+dmarc@example.org')")
    page.wait_for_selector("#dns-check td:has-text('v=TLSRPTv1; rua=mailto:alice+tls@example.org')")
    # A DMARC report sent to the address shows on the page, summarised.
    with smtplib.SMTP("127.0.0.1", daemon.ports["smtp"]) as smtp:
        smtp.sendmail("noreply-dmarc@reporter.example", ["alice+dmarc@example.org"], dmarc_message())
    for _ in range(50):  # the report is read in the background after the delivery
        page.reload()
        page.wait_for_selector("#dmarc-totals")
        if page.locator("#dmarc-reports").count():
            break
        time.sleep(0.2)
    page.wait_for_selector("#mta-sts-policy:has-text('mode enforce')")
    page.wait_for_selector("#dmarc-totals:has-text('DMARC: 12 messages passed, 3 failed (1 reports)')")
    page.wait_for_selector("#dmarc-reports td:has-text('198.51.100.7 ×3 (reject)')")
    assert page.input_value("#domain-settings input[name=dmarc_reports]") == "alice+dmarc@example.org"
    assert page.input_value("#domain-settings select[name=mta_sts_mode]") == "enforce"
    assert page.input_value("#domain-settings input[name=mta_sts_max_age]") == "86400"


def test_create_an_account_and_log_in_with_it(page: Any, browser: Any, daemon: RunningDaemon) -> None:
    _login(page, daemon)
    page.click("nav a:has-text('Accounts')")
    page.fill("#account-add input[name=account]", "zoe")
    page.fill("#account-add input[name=address]", "zoe@example.org")
    page.click("#account-add button[type=submit]")
    password = page.text_content("#account-created code.password")
    assert password and len(password) >= 16
    page.wait_for_selector("#accounts a:has-text('zoe')")
    # The account page, in a browser context of its own, with the password just shown.
    context = browser.new_context()
    try:
        account = context.new_page()
        account.goto(_url(daemon, "/webaccount/"))
        account.fill("form.login input[name=username]", "zoe@example.org")
        account.fill("form.login input[name=password]", password)
        account.click("form.login button[type=submit]")
        account.wait_for_selector("#account-name")
        assert account.text_content("#account-name") == "zoe"
    finally:
        context.close()
    # Disabling it from its page says so.
    page.click("#accounts a:has-text('zoe')")
    page.click("button:has-text('Disable')")
    page.wait_for_selector("text=Disabled: it cannot log in")


def test_alias_with_members(page: Any, daemon: RunningDaemon) -> None:
    _login(page, daemon)
    page.click("nav a:has-text('Aliases')")
    page.fill("#alias-add input[name=alias]", "team@example.org")
    page.fill("#alias-add input[name=members]", "alice@example.org")
    page.click("#alias-add button[type=submit]")
    block = "[data-alias='team@example.org']"
    page.wait_for_selector(f"{block} .members li:has-text('alice@example.org')")
    page.fill(f"{block} input[name=member]", "nobody@example.org")
    page.click(f"{block} button:has-text('Add member')")
    page.wait_for_selector(f"{block} .status.error:has-text('not an account')")
    page.fill(f"{block} input[name=member]", "bob@example.org")
    page.click(f"{block} button:has-text('Add member')")
    page.wait_for_selector(f"{block} .members li:has-text('bob@example.org')")
    assert page.locator(f"{block} .members li").count() == 2


def _ids_on_page(page: Any) -> list[int]:
    cells = page.locator("table.messages tbody tr td:nth-child(2)")
    return [int(t) for t in cells.all_inner_texts()]


def test_queue_paging_filter_and_bulk_hold_release(page: Any, daemon: RunningDaemon) -> None:
    _login(page, daemon)
    page.click("nav a:has-text('Queue')")
    page.wait_for_selector("table.messages")
    page.select_option("form.filters select[name=limit]", "100")
    page.click("form.filters button[type=submit]")
    page.wait_for_selector("text=Page 1: 100 message(s); more follow.")
    seen = _ids_on_page(page)
    for number in range(2, 11):  # every page of the 1,000, forwards
        page.click(".pager button:has-text('Next page')")
        page.wait_for_selector(f"text=Page {number}: 100 message(s)")
        seen += _ids_on_page(page)
    assert len(seen) == QUEUED and len(set(seen)) == QUEUED and seen == sorted(seen)
    assert page.locator(".pager button:has-text('Next page')").count() == 0
    page.click(".pager button:has-text('Previous page')")
    page.wait_for_selector("text=Page 9: 100 message(s)")
    assert _ids_on_page(page) == seen[800:900]
    # A filter: one destination domain (100 messages), newest first, 50 per page.
    page.fill("form.filters input[name=domain]", "dest3.example")
    page.select_option("form.filters select[name=limit]", "50")
    page.check("form.filters input[type=checkbox]")
    page.click("form.filters button[type=submit]")
    page.wait_for_selector("text=Page 1: 50 message(s); more follow.")
    first = _ids_on_page(page)
    assert first == sorted(first, reverse=True)
    assert all("dest3.example" in t for t in page.locator("table.messages tbody tr").all_inner_texts())
    # Bulk: hold every message matching the filter, then release two selected ones.
    page.select_option("div.actions select[name=scope]", "filter")
    page.click("div.actions button:has-text('Hold')")
    page.wait_for_selector(".status:has-text('100 message(s) held.')")
    _screenshot(page, "admin-queue.png")
    page.select_option("form.filters select[name=held]", "yes")
    page.fill("form.filters input[name=domain]", "")
    page.click("form.filters button[type=submit]")
    page.wait_for_selector("text=Page 1: 50 message(s); more follow.")
    page.click(".pager button:has-text('Next page')")
    page.wait_for_selector("text=Page 2: 50 message(s).")  # exactly the 100 held, no more
    page.select_option("div.actions select[name=scope]", "selected")
    page.check(f"table.messages input[data-id='{_ids_on_page(page)[0]}']")
    page.check(f"table.messages input[data-id='{_ids_on_page(page)[1]}']")
    page.click("div.actions button:has-text('Release')")
    page.wait_for_selector(".status:has-text('2 message(s) released.')")
    page.click("table.messages tbody tr >> nth=0 >> button:has-text('History')")
    page.wait_for_selector("#history :text('No delivery attempt yet.')")
    page.select_option("div.actions select[name=scope]", "filter")
    page.click("div.actions button:has-text('Release')")
    page.wait_for_selector(".status:has-text('98 message(s) released.')")
    page.wait_for_selector("text=Page 1: 0 message(s).")


def test_queue_filter_by_transport_and_change_it(page: Any, daemon: RunningDaemon) -> None:
    _login(page, daemon)
    page.click("nav a:has-text('Queue')")
    page.wait_for_selector("table.messages")
    page.wait_for_selector("form.filters select[name=transport] option[value=relay]", state="attached")
    page.select_option("form.filters select[name=transport]", "relay")
    page.click("form.filters button[type=submit]")
    page.wait_for_selector("text=Page 1: 50 message(s); more follow.")
    rows = page.locator("table.messages tbody tr").all_inner_texts()
    assert all("dest7.example (queued, via relay)" in t for t in rows), rows
    ids = _ids_on_page(page)
    page.click(".pager button:has-text('Next page')")
    page.wait_for_selector("text=Page 2: 50 message(s).")  # the 100 messages to dest7.example, no more
    page.click(".pager button:has-text('Previous page')")
    page.wait_for_selector("text=Page 1: 50 message(s); more follow.")
    # Two selected messages go direct, fixed by the administrator.
    page.select_option("div.actions select[name=scope]", "selected")
    page.check(f"table.messages input[data-id='{ids[0]}']")
    page.check(f"table.messages input[data-id='{ids[1]}']")
    page.select_option("div.actions select[name=to]", "direct")
    page.click("div.actions button:has-text('Change transport')")
    page.wait_for_selector(".status:has-text('2 recipient(s) changed.')")
    page.wait_for_selector("text=Page 1: 50 message(s); more follow.")
    assert ids[0] not in _ids_on_page(page) and ids[1] not in _ids_on_page(page)
    page.click(".pager button:has-text('Next page')")
    page.wait_for_selector("text=Page 2: 48 message(s).")
    page.select_option("form.filters select[name=transport]", "direct")
    page.fill("form.filters input[name=domain]", "dest7.example")
    page.click("form.filters button[type=submit]")
    page.wait_for_selector("text=Page 1: 2 message(s).")
    assert sorted(_ids_on_page(page)) == sorted(ids[:2])
    page.click("table.messages tbody tr >> nth=0 >> button:has-text('History')")
    page.wait_for_selector("#history td:has-text('direct (set by an administrator)')")
