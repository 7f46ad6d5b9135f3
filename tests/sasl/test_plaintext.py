"""PLAIN and LOGIN server mechanisms: authzid rules, wrong passwords, malformed input."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from twisted.trial.unittest import TestCase

from mailsrv.auth.interfaces import InvalidCredentials
from mailsrv.sasl import Challenge, SASLError, Success, make_server_mechanism
from mailsrv.tlsutil import ChannelBindings
from tests.auth.fixtures import make_world


class PlaintextMechanismTests(TestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mailsrv-sasl-"))
        self.addCleanup(shutil.rmtree, self.dir, True)
        _, self.creds, self.provider = make_world(self.dir)
        self.addCleanup(self.creds.close)

    def mech(self, name: str):  # type: ignore[no-untyped-def]
        return make_server_mechanism(name, self.provider, ChannelBindings())

    async def plain(self, message: bytes) -> Success:
        step = await self.mech("plain").start(message)
        assert isinstance(step, Success)
        return step

    async def test_plain_initial_response(self) -> None:
        step = await self.plain(b"\x00alice@example.org\x00correct horse")
        self.assertEqual(step.identity.account, "alice")
        self.assertIsNone(step.final_data)

    async def test_plain_after_empty_challenge(self) -> None:
        m = self.mech("PLAIN")
        self.assertEqual(await m.start(None), Challenge(b""))
        step = await m.respond(b"\x00alice\x00correct horse")
        self.assertIsInstance(step, Success)
        # Nothing after success.
        with self.assertRaises(SASLError):
            await m.respond(b"x")

    async def test_plain_authzid_same_account(self) -> None:
        step = await self.plain(b"Alice.Liddell@example.org\x00alice@example.org\x00correct horse")
        self.assertEqual(step.identity.account, "alice")
        self.assertEqual(str(step.identity.address), "Alice.Liddell@example.org")
        step = await self.plain(b"alice\x00alice@example.org\x00correct horse")
        self.assertEqual(step.identity.account, "alice")

    async def test_plain_authzid_other_account_refused(self) -> None:
        for authzid in [b"jos\xc3\xa9@example.org", b"nobody@example.org", b"bob"]:
            with self.assertRaises(InvalidCredentials):
                await self.mech("PLAIN").start(authzid + b"\x00alice\x00correct horse")

    async def test_plain_wrong_password_and_malformed(self) -> None:
        with self.assertRaises(InvalidCredentials):
            await self.mech("PLAIN").start(b"\x00alice\x00wrong")
        for bad in [
            b"",
            b"alice",
            b"\x00alice",
            b"\x00\x00pw",
            b"\x00alice\x00",
            b"a\x00b\x00c\x00d",
            b"\x00\xff\x00x",
        ]:
            with self.assertRaises(SASLError):
                await self.mech("PLAIN").start(bad)
        with self.assertRaises(SASLError):
            await self.mech("PLAIN").start(b"\x00alice\x00" + b"x" * 5000)

    async def test_login(self) -> None:
        m = self.mech("LOGIN")
        self.assertEqual(await m.start(None), Challenge(b"Username:"))
        self.assertEqual(await m.respond(b"alice@example.org"), Challenge(b"Password:"))
        step = await m.respond(b"correct horse")
        assert isinstance(step, Success)
        self.assertEqual(step.identity.account, "alice")

    async def test_login_initial_response_is_username(self) -> None:
        m = self.mech("LOGIN")
        self.assertEqual(await m.start(b"alice"), Challenge(b"Password:"))
        with self.assertRaises(InvalidCredentials):
            await m.respond(b"nope")
        with self.assertRaises(SASLError):
            await m.respond(b"again")

    async def test_unknown_mechanism(self) -> None:
        with self.assertRaises(SASLError):
            self.mech("GSSAPI")
        with self.assertRaises(SASLError):
            self.mech("SCRAM-SHA-256-PLUS")  # no channel binding without TLS
