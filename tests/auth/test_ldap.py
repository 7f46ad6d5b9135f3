"""LDAP accounts against a real slapd started by the test (tests/auth/slapd.py)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import gatherResults
from twisted.trial.unittest import TestCase

from mailsrv.address import Address
from mailsrv.auth.interfaces import InvalidCredentials, MechanismUnavailable, TemporaryAuthFailure
from mailsrv.auth.ldap import POOL_SIZE, LDAPAccountProvider
from mailsrv.config.types import LDAPConfig
from tests.auth.slapd import BASE, SERVICE_DN, SERVICE_PASSWORD, Slapd, start_slapd
from tests.tools import needs_program


def ldap_config(slapd: Slapd, directory: Path, **changes: object) -> LDAPConfig:
    password_file = directory / "bindpw"
    password_file.write_text(SERVICE_PASSWORD + "\n")
    values: dict[str, object] = dict(
        uris=(slapd.uri,),
        bind_dn=SERVICE_DN,
        bind_password_file=password_file,
        user_base=f"ou=people,{BASE}",
        user_filter="(&(objectClass=inetOrgPerson)(|(mail={address})(uid={username})))",
        account_attribute="uid",
        address_attributes=("mail",),
        display_name_attribute="cn",
        mail_group_dn=f"cn=mailusers,ou=groups,{BASE}",
        starttls=True,
        require_tls=True,
        ca_file=slapd.ca_path,
        timeout=3.0,
    )
    values.update(changes)
    return LDAPConfig(**values)  # type: ignore[arg-type]


@needs_program("slapd", package="slapd")
@needs_program("ldapmodify", package="ldap-utils")
class LDAPProviderTests(TestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mailsrv-ldap-"))
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.slapd = start_slapd(self.dir / "slapd")
        self.addCleanup(self.slapd.stop)
        self.provider = LDAPAccountProvider(ldap_config(self.slapd, self.dir), reactor)

    async def test_login_by_address_and_by_uid(self) -> None:
        identity = await self.provider.check_password("d.directory@example.org", "dorapass")
        self.assertEqual(identity.account, "dora")
        self.assertEqual(str(identity.address), "d.directory@example.org")
        identity = await self.provider.check_password("dora", "dorapass")
        self.assertEqual(str(identity.address), "dora@example.org")

    async def test_refusals(self) -> None:
        for name, password in [
            ("dora@example.org", "wrong"),
            ("dora@example.org", ""),  # an empty simple bind would be anonymous
            ("eve@example.org", "evepass"),  # not in the mail group
            ("*)(uid=*", "dorapass"),  # filter injection
            ("*", "dorapass"),
            ("nobody@example.org", "x"),
        ]:
            with self.assertRaises(InvalidCredentials, msg=name):
                await self.provider.check_password(name, password)

    async def test_no_stored_secrets(self) -> None:
        self.assertFalse(self.provider.supports_stored_secrets())
        with self.assertRaises(MechanismUnavailable):
            await self.provider.scram_secret("dora", "sha256")

    async def test_delivery_lookup_cache_and_outage(self) -> None:
        dora = Address.parse("Dora@example.org")
        self.assertEqual(await self.provider.account_for_address(dora), "dora")
        self.assertIsNone(await self.provider.account_for_address(Address.parse("nobody@example.org")))
        self.slapd.stop()
        # Seen before: still deliverable. Never seen: temporary failure, not "unknown".
        self.assertEqual(await self.provider.account_for_address(dora), "dora")
        with self.assertRaises(TemporaryAuthFailure):
            await self.provider.account_for_address(Address.parse("d.directory@example.org"))
        with self.assertRaises(TemporaryAuthFailure):
            await self.provider.check_password("dora", "dorapass")
        self.slapd.start()
        self.assertEqual(
            await self.provider.check_password("dora", "dorapass"),
            await self.provider.check_password("dora", "dorapass"),
        )

    async def test_concurrent_lookups_share_the_pool(self) -> None:
        # More lookups than POOL_SIZE at once: they queue for a slot and all answer.
        dora = Address.parse("dora@example.org")
        results = await gatherResults([self.provider.account_for_address(dora) for _ in range(20)])
        self.assertEqual(results, ["dora"] * 20)
        self.assertLessEqual(len(self.provider.directory._pool), POOL_SIZE)

    async def test_removed_user_is_refused(self) -> None:
        dora = Address.parse("dora@example.org")
        self.assertEqual(await self.provider.account_for_address(dora), "dora")
        self.slapd.modify(f"dn: uid=dora,ou=people,{BASE}\nchangetype: delete\n")
        self.assertIsNone(await self.provider.account_for_address(dora))
        with self.assertRaises(InvalidCredentials):
            await self.provider.check_password("dora", "dorapass")

    async def test_tls_with_the_wrong_ca_is_refused(self) -> None:
        other_ca = self.dir / "other-ca.pem"
        from tests.auth.slapd import make_ca_and_server_cert

        (self.dir / "other").mkdir()
        other_ca = make_ca_and_server_cert(self.dir / "other")[0]
        provider = LDAPAccountProvider(ldap_config(self.slapd, self.dir, ca_file=other_ca), reactor)
        with self.assertRaises(TemporaryAuthFailure):
            await provider.check_password("dora", "dorapass")

    async def test_ldaps_with_the_test_ca(self) -> None:
        provider = LDAPAccountProvider(
            ldap_config(self.slapd, self.dir, uris=(self.slapd.ldaps_uri,), starttls=False), reactor
        )
        self.assertEqual((await provider.check_password("dora", "dorapass")).account, "dora")

    async def test_plaintext_is_refused_when_tls_is_required(self) -> None:
        provider = LDAPAccountProvider(ldap_config(self.slapd, self.dir, starttls=False), reactor)
        with self.assertRaises(TemporaryAuthFailure):
            await provider.check_password("dora", "dorapass")
        # Explicitly allowed plaintext (require_tls = false) works.
        provider = LDAPAccountProvider(ldap_config(self.slapd, self.dir, starttls=False, require_tls=False), reactor)
        self.assertEqual((await provider.check_password("dora", "dorapass")).account, "dora")

    async def test_refused_service_bind_is_temporary(self) -> None:
        (self.dir / "wrongpw").write_text("not-the-password\n")
        provider = LDAPAccountProvider(
            ldap_config(self.slapd, self.dir, bind_password_file=self.dir / "wrongpw"), reactor
        )
        with self.assertRaises(TemporaryAuthFailure):
            await provider.check_password("dora", "dorapass")
        with self.assertRaises(TemporaryAuthFailure):
            await provider.account_for_address(Address.parse("dora@example.org"))

    async def test_admin_group(self) -> None:
        provider = LDAPAccountProvider(
            ldap_config(self.slapd, self.dir, mail_group_dn=None, admin_group_dn=f"cn=mailadmins,ou=groups,{BASE}"),
            reactor,
        )
        self.assertTrue(await provider.is_admin("eve@example.org"))
        self.assertFalse(await provider.is_admin("dora"))
        self.assertFalse(await provider.is_admin("*)(uid=*"))
        self.assertFalse(await self.provider.is_admin("dora"))  # no admin group configured

    async def test_admins_need_not_be_mail_users(self) -> None:
        # eve is in the admin group and not in the mail group (the fixture's directory).
        provider = LDAPAccountProvider(
            ldap_config(self.slapd, self.dir, admin_group_dn=f"cn=mailadmins,ou=groups,{BASE}"), reactor
        )
        self.assertTrue(await provider.is_admin("eve@example.org"))
        self.assertEqual(await provider.admin_login("eve", "evepass"), "eve")
        self.assertIsNone(await provider.resolve_login("eve"))  # still no mail user
        for login, password in (("eve", "wrong"), ("dora", "dorapass"), ("eve", ""), ("*)(uid=*", "evepass")):
            with self.assertRaises(InvalidCredentials):
                await provider.admin_login(login, password)
        with self.assertRaises(InvalidCredentials):  # no admin group configured: nobody
            await self.provider.admin_login("eve", "evepass")

    async def test_failover_to_the_next_uri(self) -> None:
        dead = "ldap://127.0.0.1:1"
        provider = LDAPAccountProvider(ldap_config(self.slapd, self.dir, uris=(dead, self.slapd.uri)), reactor)
        identity = await provider.check_password("dora", "dorapass")
        self.assertEqual(identity.account, "dora")


@needs_program("slapd", package="slapd")
@needs_program("ldapmodify", package="ldap-utils")
class LDAPQuotaTests(TestCase):
    async def test_quota_attribute(self) -> None:
        d = Path(tempfile.mkdtemp(prefix="mailsrv-ldap-"))
        self.addCleanup(shutil.rmtree, d, True)
        slapd = start_slapd(d / "slapd")
        self.addCleanup(slapd.stop)
        # employeeNumber stands in for a quota attribute (inetOrgPerson has no quota attribute).
        slapd.modify(f"dn: uid=dora,ou=people,{BASE}\nchangetype: modify\nadd: employeeNumber\nemployeeNumber: 5000\n")
        provider = LDAPAccountProvider(ldap_config(slapd, d, quota_attribute="employeeNumber"), reactor)
        self.assertIsNone(provider.quota_for("dora"))
        await provider.check_password("dora", "dorapass")
        self.assertEqual(provider.quota_for("dora"), 5000)
