"""LocalAccountProvider and CredentialStore: login names, disabled accounts, secrets."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
from pathlib import Path

from twisted.trial.unittest import TestCase

from mailsrv.address import Address
from mailsrv.auth.credentials import CredentialStore, DuplicateTLSPublicKey, TLSPublicKey
from mailsrv.auth.interfaces import InvalidCredentials, LoginIdentity
from mailsrv.auth.passwords import PasswordHasher, cram_md5_states, derive_scram_secret
from tests.auth.fixtures import make_world
from tests.tools import needs_program


class LocalProviderTests(TestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mailsrv-auth-"))
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.dynamic, self.creds, self.provider = make_world(self.dir)
        self.addCleanup(self.creds.close)

    async def test_login_by_address_case_insensitive_and_by_name(self) -> None:
        ident = await self.provider.check_password("ALICE.liddell@example.ORG", "correct horse")
        self.assertEqual(ident.account, "alice")
        self.assertEqual(str(ident.address), "Alice.Liddell@example.org")
        ident = await self.provider.check_password("alice", "correct horse")
        self.assertEqual(ident, LoginIdentity("alice", Address.parse("alice@example.org")))
        # U-label domain login and A-label domain give the same account.
        ident = await self.provider.check_password("alias@bücher.example", "correct horse")
        self.assertEqual(ident.account, "alice")

    async def test_nfc_login_names(self) -> None:
        decomposed = "jose\u0301@example.org"
        ident = await self.provider.check_password(decomposed, "p\u00e4ss")
        self.assertEqual(ident.account, "jos\u00e9")
        ident = await self.provider.check_password("JOSE\u0301", "pa\u0308ss")  # password NFKC'd too
        self.assertEqual(ident.account, "jos\u00e9")

    async def test_wrong_password_unknown_disabled_passwordless(self) -> None:
        for user, password in [
            ("alice", "wrong"),
            ("nobody@example.org", "x"),
            ("bob", "bob-secret"),
            ("nopass", ""),
            ("alice+tag@example.org", "correct horse"),
            ("not an address@", "x"),
            ("", "x"),
        ]:
            with self.assertRaises(InvalidCredentials):
                await self.provider.check_password(user, password)

    async def test_resolve_and_delivery(self) -> None:
        self.assertIsNone(await self.provider.resolve_login("bob"))
        self.assertEqual((await self.provider.resolve_login("alice@example.org")).account, "alice")  # type: ignore[union-attr]
        # A disabled account still receives mail.
        self.assertEqual(await self.provider.account_for_address(Address.parse("BOB@example.org")), "bob")
        self.assertIsNone(await self.provider.account_for_address(Address.parse("x@example.org")))

    async def test_config_reload_is_seen(self) -> None:
        cfg = self.dynamic.current
        accounts = dict(cfg.accounts)
        accounts["bob"] = dataclasses.replace(accounts["bob"], disabled=False)
        self.dynamic.current = dataclasses.replace(cfg, accounts=accounts)
        ident = await self.provider.check_password("bob@example.org", "bob-secret")
        self.assertEqual(ident.account, "bob")

    async def test_secrets(self) -> None:
        ident, secret = await self.provider.scram_secret("alice", "sha256")
        self.assertEqual(ident.account, "alice")
        self.assertEqual(secret, derive_scram_secret("correct horse", "sha256", secret.salt, secret.iterations))
        _, states = await self.provider.cram_md5_secret("alice@example.org")
        self.assertEqual(states, cram_md5_states("correct horse"))
        with self.assertRaises(InvalidCredentials):
            await self.provider.scram_secret("bob", "sha1")
        with self.assertRaises(InvalidCredentials):
            await self.provider.cram_md5_secret("nobody")

    async def test_set_password_in_thread(self) -> None:
        await self.creds.set_password("alice", "new one")
        await self.provider.check_password("alice", "new one")
        with self.assertRaises(InvalidCredentials):
            await self.provider.check_password("alice", "correct horse")
        # Reopening the database sees the change (it was committed).
        other = CredentialStore(self.dir, hasher=PasswordHasher.for_tests())
        self.addCleanup(other.close)
        stored = other.get("alice")
        assert stored is not None
        self.assertTrue(other.hasher.verify("new one", stored.password_hash))
        self.assertEqual(set(stored.scram), {"sha1", "sha256"})


class CredentialStoreTests(TestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mailsrv-auth-"))
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.creds = CredentialStore(self.dir, hasher=PasswordHasher.for_tests())
        self.addCleanup(self.creds.close)

    def test_no_plaintext_stored(self) -> None:
        self.creds.set_password_blocking("alice", "Sup3rSecretPassw0rd")
        self.creds.close()
        for path in self.dir.iterdir():
            self.assertNotIn(b"Sup3rSecretPassw0rd", path.read_bytes())
        self.creds = CredentialStore(self.dir, hasher=PasswordHasher.for_tests())

    def test_tls_public_keys(self) -> None:
        key = TLSPublicKey(b"\x01" * 32, "alice", "laptop", "ed25519", None, False, "PEM", time.time())
        self.creds.add_tls_public_key(key)
        with self.assertRaises(DuplicateTLSPublicKey):
            self.creds.add_tls_public_key(dataclasses.replace(key, account="bob"))
        key2 = dataclasses.replace(
            key,
            fingerprint=b"\x02" * 32,
            name="phone",
            login_address="a@example.org",
            no_imap_preauth=True,
            created=key.created + 1,
        )
        self.creds.add_tls_public_key(key2)
        self.assertEqual(self.creds.list_tls_public_keys("alice"), [key, key2])
        self.assertEqual(self.creds.list_tls_public_keys("bob"), [])
        self.assertEqual(self.creds.get_tls_public_key(b"\x02" * 32), key2)
        self.assertFalse(self.creds.remove_tls_public_key(b"\x01" * 32, account="bob"))
        self.assertTrue(self.creds.remove_tls_public_key(b"\x01" * 32, account="alice"))
        self.assertIsNone(self.creds.get_tls_public_key(b"\x01" * 32))
        self.creds.remove_account("alice")
        self.assertEqual(self.creds.list_tls_public_keys(), [])


class WithDynamicConfigStoreTests(TestCase):
    """The provider on the real DynamicConfigStore sees accounts added at run time."""

    async def test_accounts_added_and_removed(self) -> None:
        from mailsrv.auth.local import LocalAccountProvider
        from mailsrv.config.dynamic import DynamicConfigStore

        d = Path(tempfile.mkdtemp(prefix="mailsrv-auth-"))
        self.addCleanup(shutil.rmtree, d, True)
        store = DynamicConfigStore(d / "dynamic.toml")
        creds = CredentialStore(d, hasher=PasswordHasher.for_tests())
        self.addCleanup(creds.close)
        provider = LocalAccountProvider(store, creds)
        store.add_domain("Example.ORG")
        store.add_account("mjl", "Mjl@example.org")
        await creds.set_password("mjl", "test1234")
        self.assertEqual((await provider.check_password("mjl@EXAMPLE.org", "test1234")).account, "mjl")
        store.add_address("mjl", "other@example.org")
        self.assertEqual((await provider.check_password("other@example.org", "test1234")).account, "mjl")
        store.remove_address("mjl", "other@example.org")
        with self.assertRaises(InvalidCredentials):
            await provider.check_password("other@example.org", "test1234")


@needs_program("openssl", package="openssl")
def test_tls_public_key_from_pem(tmp_path: Path) -> None:
    import subprocess

    import pytest

    from mailsrv.auth.credentials import tls_public_key_from_pem
    from mailsrv.tlsutil import generate_self_signed

    generate_self_signed(["client"], tmp_path / "c.pem", tmp_path / "k.pem")
    pem = (tmp_path / "c.pem").read_text()
    key = tls_public_key_from_pem("alice", "laptop", "junk before\n" + pem)
    out = subprocess.run(
        f"openssl x509 -in {tmp_path / 'c.pem'} -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum",
        shell=True,
        check=True,
        capture_output=True,
    ).stdout
    assert key.fingerprint.hex() == out.split()[0].decode()
    assert key.key_type == "ecdsa-p256" and key.cert_pem == pem
    with pytest.raises(ValueError):
        tls_public_key_from_pem("alice", "x", "not a certificate")


class HashConcurrencyTests(TestCase):
    async def test_hashing_is_bounded(self) -> None:
        """A login flood runs at most `hash_concurrency` argon2 computations at once."""
        import threading

        from twisted.internet.defer import gatherResults

        d = Path(tempfile.mkdtemp(prefix="mailsrv-auth-"))
        self.addCleanup(shutil.rmtree, d, True)
        creds = CredentialStore(d, hasher=PasswordHasher.for_tests(), hash_concurrency=2)
        self.addCleanup(creds.close)
        lock = threading.Lock()
        running = [0, 0]  # current, maximum

        def work() -> None:
            with lock:
                running[0] += 1
                running[1] = max(running[1], running[0])
            time.sleep(0.02)
            with lock:
                running[0] -= 1

        await gatherResults([creds.hash_in_thread(work) for _ in range(8)])
        self.assertEqual(running[1], 2)
