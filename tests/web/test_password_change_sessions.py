"""A password change ends the account's web sessions (account page and webmail) wherever it is
made: `mailsrv account setpassword` through the running daemon, another process writing
auth.db on its own (the CLI when it does not reach the daemon), `account disable`, and
`setadminpassword` for the admin interface. The next API call gets 401 (user:badAuth);
sessions made after the change work, and the account page's own password change keeps the
session that made it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mailsrv.auth.credentials import CredentialStore
from mailsrv.auth.passwords import PasswordHasher
from tests.daemon import RunningDaemon, write_config
from tests.web.apiclient import ApiCallError, ApiClient

pytestmark = pytest.mark.xdist_group("password_change_sessions")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDaemon]:
    d = write_config(tmp_path_factory.mktemp("pwsessions") / "d")
    d.start()
    try:
        yield d
    finally:
        d.stop()


def _sessions(daemon: RunningDaemon, login: str, password: str) -> tuple[ApiClient, ApiClient]:
    account = ApiClient.for_daemon(daemon, "/webaccount/")
    account.login(login, password)
    webmail = ApiClient.for_daemon(daemon, "/webmail/")
    webmail.login(login, password)
    account.call("Account")
    webmail.call("Mailboxes")
    return account, webmail


def _refused(client: ApiClient, method: str) -> str:
    with pytest.raises(ApiCallError) as caught:
        client.call(method)
    assert caught.value.status == 401, caught.value
    return caught.value.message


def test_cli_setpassword_through_the_daemon(daemon: RunningDaemon) -> None:
    account, webmail = _sessions(daemon, "alice@example.org", "alicepass")
    r = daemon.cli("account", "setpassword", "alice", input="alice-new-pass-1\n")
    assert r.returncode == 0, r.stderr
    assert "password changed" in _refused(account, "Account")
    _refused(webmail, "Mailboxes")
    # Sessions made after the change, with the new password, work.
    account, webmail = _sessions(daemon, "alice@example.org", "alice-new-pass-1")
    assert account.call("Account")["account"] == "alice"


def test_a_change_by_another_process_is_noticed(daemon: RunningDaemon) -> None:
    """Another process writing auth.db (as the CLI does when it does not reach the daemon): the
    daemon's cached generations are refreshed by SQLite's data_version."""
    account, webmail = _sessions(daemon, "bob@example.org", "bobpass")
    other = CredentialStore(daemon.data_dir, hasher=PasswordHasher.for_tests())
    try:
        other.set_password_blocking("bob", "bob-new-pass-1")
    finally:
        other.close()
    _refused(account, "Account")
    _refused(webmail, "Mailboxes")
    kept, kept_webmail = _sessions(daemon, "bob@example.org", "bob-new-pass-1")
    # The account page's own password change ends the other sessions (3: its webmail one and
    # another pair), not its own.
    other_session, _ = _sessions(daemon, "bob@example.org", "bob-new-pass-1")
    assert kept.call("SetPassword", "bob-new-pass-1", "bob-newer-pass-2") == 3
    assert kept.call("Account")["account"] == "bob"
    _refused(other_session, "Account")
    _refused(kept_webmail, "Mailboxes")


def test_disable_and_enable_again_ends_sessions(daemon: RunningDaemon) -> None:
    daemon.cli_ok("account", "add", "carol", "carol@example.org", "--password", "carol-pass-1")
    account, webmail = _sessions(daemon, "carol@example.org", "carol-pass-1")
    daemon.cli_ok("account", "disable", "carol")
    daemon.cli_ok("account", "enable", "carol")
    _refused(account, "Account")
    _refused(webmail, "Mailboxes")
    assert _sessions(daemon, "carol@example.org", "carol-pass-1")[0].call("Account")["account"] == "carol"


def test_setadminpassword_ends_admin_sessions(daemon: RunningDaemon) -> None:
    assert daemon.cli("setadminpassword", input="admin-secret-1\n").returncode == 0
    admin = ApiClient.for_daemon(daemon, "/webadmin/")
    admin.login("admin", "admin-secret-1")
    assert admin.call("Whoami") == "admin"
    assert daemon.cli("setadminpassword", input="admin-secret-2\n").returncode == 0
    _refused(admin, "Whoami")
    admin = ApiClient.for_daemon(daemon, "/webadmin/")
    admin.login("admin", "admin-secret-2")
    assert admin.call("Whoami") == "admin"
