"""Admin login by LDAP admin-group membership against a real slapd (tests/auth/slapd.py):
a member of `[ldap] admin_group_dn` logs in to /webadmin/ with their directory password, a
directory user outside the group is refused, and removing the membership in slapd ends the
admin's session at its next call and refuses new logins. One step in chromium: the login form."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.auth.slapd import BASE, start_slapd
from tests.daemon import start_daemon
from tests.tools import needs_program
from tests.web.apiclient import ApiCallError, ApiClient

pytestmark = pytest.mark.xdist_group("ldap_admin")

PREFIX = "/webadmin/"
ADMIN_GROUP = f"cn=mailadmins,ou=groups,{BASE}"


def _refused(f: object, *args: str) -> ApiCallError:
    with pytest.raises(ApiCallError) as caught:
        f(*args)  # type: ignore[operator]
    return caught.value


@needs_program("slapd", package="slapd")
@needs_program("ldapmodify", package="ldap-utils")
def test_admin_group_members_log_in_and_lose_it_with_the_membership(tmp_path: Path, page: Any) -> None:
    slapd = start_slapd(tmp_path / "slapd")
    try:
        # dora is a mail user; eve is in the admin group only (not a mail user), as admins may be.
        slapd.modify(f"dn: {ADMIN_GROUP}\nchangetype: modify\nadd: member\nmember: uid=dora,ou=people,{BASE}\n")
        # admin_recheck_seconds = 0: the directory is asked on every admin call (default: after 30 s).
        ldap = slapd.mailsrv_section(tmp_path / "bindpw")
        ldap += f'admin_group_dn = "{ADMIN_GROUP}"\nadmin_recheck_seconds = 0\n'
        ldap += "\n[limits]\nlogin_failures_per_ip = 100\n"
        daemon = start_daemon(tmp_path / "d", accounts={}, extra_static=ldap)
        try:
            dora = ApiClient.for_daemon(daemon, PREFIX)
            dora.login("dora", "dorapass")
            assert dora.call("Whoami") == "dora"
            assert [d["domain"] for d in dora.call("Domains")] == ["example.org"]
            # The same in the browser: the login form with the directory password.
            page.goto(f"http://127.0.0.1:{daemon.ports['http']}{PREFIX}")
            page.fill("form.login input[name=username]", "dora")
            page.fill("form.login input[name=password]", "dorapass")
            page.click("form.login button[type=submit]")
            page.wait_for_selector("#who:has-text('Logged in as dora')")
            eve = ApiClient.for_daemon(daemon, PREFIX)
            eve.login("eve@example.org", "evepass")
            assert eve.call("Whoami") == "eve"
            # `mailsrv ldap test` says what eve is.
            out = daemon.cli("ldap", "test", "eve@example.org")
            assert out.returncode == 0, out.stderr
            assert "admin:        yes" in out.stdout and "web admin interface only" in out.stdout
            # finn is a mail user outside the admin group; a wrong password is refused as well.
            for login, password in (("finn", "finnpass"), ("dora", "wrong"), ("nobody", "x")):
                refused = _refused(ApiClient.for_daemon(daemon, PREFIX).login, login, password)
                assert refused.code == "user:badAuth", (login, refused)
            # The membership removed in the directory: the session ends at its next call.
            slapd.modify(f"dn: {ADMIN_GROUP}\nchangetype: modify\ndelete: member\nmember: uid=eve,ou=people,{BASE}\n")
            error = _refused(eve.call, "Domains")
            assert error.status == 401 and "admin group" in error.message
            assert _refused(ApiClient.for_daemon(daemon, PREFIX).login, "eve", "evepass").code == "user:badAuth"
            assert dora.call("Whoami") == "dora"
            # While the directory is down, a logged-in directory admin's session goes on.
            slapd.stop()
            assert dora.call("Whoami") == "dora"
            slapd.start()
            assert "Traceback" not in daemon.stop()
        finally:
            daemon.kill()
    finally:
        slapd.stop()
