"""AccountProvider.login_for_account: may a registered TLS client key's account log in now?

Local accounts answer from the dynamic config; LDAP ones from a real slapd (tests/auth/slapd.py).
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from mailsrv.address import Address
from mailsrv.auth.interfaces import LoginIdentity, TemporaryAuthFailure
from mailsrv.auth.ldap import LDAPAccountProvider
from tests.auth.fixtures import make_world
from tests.auth.slapd import BASE, start_slapd
from tests.auth.test_ldap import ldap_config
from tests.tools import needs_program


class LocalTests(TestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mailsrv-auth-"))
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.dynamic, self.creds, self.provider = make_world(self.dir)
        self.addCleanup(self.creds.close)

    async def test_existing_enabled_account(self) -> None:
        alice = await self.provider.login_for_account("alice")
        self.assertEqual(alice, LoginIdentity("alice", Address.parse("alice@example.org")))
        # The login address as configured, whatever case it was stored in.
        other = await self.provider.login_for_account("alice", Address.parse("alice.liddell@EXAMPLE.org"))
        self.assertEqual(other, LoginIdentity("alice", Address.parse("Alice.Liddell@example.org")))

    async def test_refusals(self) -> None:
        self.assertIsNone(await self.provider.login_for_account("bob"))  # disabled
        self.assertIsNone(await self.provider.login_for_account("nobody"))
        self.assertIsNone(await self.provider.login_for_account("ALICE"))  # keys name accounts exactly
        self.assertIsNone(await self.provider.login_for_account("alice", Address.parse("bob@example.org")))

    async def test_removed_from_the_dynamic_config(self) -> None:
        self.assertIsNotNone(await self.provider.login_for_account("alice"))
        accounts = dict(self.dynamic.current.accounts)
        del accounts["alice"]
        self.dynamic.current = dataclasses.replace(self.dynamic.current, accounts=accounts)
        self.assertIsNone(await self.provider.login_for_account("alice"))


@needs_program("slapd", package="slapd")
@needs_program("ldapmodify", package="ldap-utils")
class LDAPTests(TestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mailsrv-ldap-"))
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.slapd = start_slapd(self.dir / "slapd")
        self.addCleanup(self.slapd.stop)

    def provider(self, **changes: object) -> LDAPAccountProvider:
        return LDAPAccountProvider(ldap_config(self.slapd, self.dir, **changes), reactor)

    async def test_by_account_attribute(self) -> None:
        provider = self.provider()
        dora = LoginIdentity("dora", Address.parse("dora@example.org"))
        self.assertEqual(await provider.login_for_account("dora"), dora)
        self.assertEqual(await provider.login_for_account("DORA"), dora)  # uid ignores case; spelt as stored
        d_directory = Address.parse("d.directory@example.org")
        self.assertEqual(await provider.login_for_account("dora", d_directory), LoginIdentity("dora", d_directory))
        self.assertIsNone(await provider.login_for_account("dora", Address.parse("finn@example.org")))
        self.assertIsNone(await provider.login_for_account("eve"))  # not in the mail group
        self.assertIsNone(await provider.login_for_account("nobody"))
        # Never an address, nor a filter: only the account attribute's value.
        self.assertIsNone(await provider.login_for_account("dora@example.org"))
        self.assertIsNone(await provider.login_for_account("*"))
        self.assertIsNone(await provider.login_for_account("*)(uid=*"))
        self.assertIsNone(await provider.login_for_account(""))

    async def test_filters_keep_their_fixed_conditions(self) -> None:
        # Placeholders only in address tests, next to wildcards: still found by account.
        provider = self.provider(user_filter="(&(objectClass=inetOrgPerson)(mail=*{address}))")
        self.assertEqual(
            (await provider.login_for_account("finn")), LoginIdentity("finn", Address.parse("finn@example.org"))
        )
        # A fixed condition the entry fails (here an object class it lacks) refuses it.
        provider = self.provider(user_filter="(&(objectClass=posixAccount)(uid={username}))")
        self.assertIsNone(await provider.login_for_account("finn"))

    async def test_deleted_entry_and_outage(self) -> None:
        provider = self.provider()
        self.assertIsNotNone(await provider.login_for_account("finn"))
        self.slapd.modify(f"dn: uid=finn,ou=people,{BASE}\nchangetype: delete\n")
        self.assertIsNone(await provider.login_for_account("finn"))
        self.slapd.modify(
            f"dn: cn=mailusers,ou=groups,{BASE}\nchangetype: modify\ndelete: member\n"
            f"member: uid=dora,ou=people,{BASE}\n"
        )
        self.assertIsNone(await provider.login_for_account("dora"))  # taken out of the mail group
        self.slapd.stop()
        with self.assertRaises(TemporaryAuthFailure):
            await provider.login_for_account("dora")
