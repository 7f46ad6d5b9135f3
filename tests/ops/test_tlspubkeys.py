"""ops.tlspubkeys on its own (local accounts; the LDAP path is covered by tests/auth/test_ldap)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from mailsrv.ops import tlspubkeys
from mailsrv.ops.errors import Exists, InvalidInput, NotFound
from mailsrv.server import Server
from mailsrv.tlsutil import self_signed_certificate
from tests.ops.world import result


def _cert_pem() -> str:
    cert = self_signed_certificate(ed25519.Ed25519PrivateKey.generate(), "phone", 30)
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_add_get_list_remove(server: Server) -> None:
    info = result(
        tlspubkeys.add(
            server, tlspubkeys.AddKey(account="alice", cert_pem=_cert_pem(), name="phone", no_imap_preauth=True)
        )
    )
    assert (info.account, info.name, info.key_type, info.login_address, info.no_imap_preauth) == (
        "alice",
        "phone",
        "ed25519",
        "",
        True,
    )
    assert tlspubkeys.get(server, tlspubkeys.Fingerprint(fingerprint=info.fingerprint)) == info
    assert tlspubkeys.list_keys(server, tlspubkeys.ListKeys(account="alice")) == [info]
    assert tlspubkeys.list_keys(server, tlspubkeys.ListKeys()) == [info]
    assert tlspubkeys.list_keys(server, tlspubkeys.ListKeys(account="bob")) == []
    tlspubkeys.remove(server, tlspubkeys.Fingerprint(fingerprint=info.fingerprint))
    with pytest.raises(NotFound):
        tlspubkeys.get(server, tlspubkeys.Fingerprint(fingerprint=info.fingerprint))
    with pytest.raises(NotFound):
        tlspubkeys.remove(server, tlspubkeys.Fingerprint(fingerprint=info.fingerprint))


def test_refusals(server: Server) -> None:
    pem = _cert_pem()
    with pytest.raises(NotFound, match="no such account"):
        result(tlspubkeys.add(server, tlspubkeys.AddKey(account="nobody", cert_pem=pem)))
    with pytest.raises(InvalidInput, match="not an address of account"):
        result(tlspubkeys.add(server, tlspubkeys.AddKey(account="alice", cert_pem=pem, login_address="x@example.org")))
    with pytest.raises(InvalidInput, match="invalid login address"):
        result(tlspubkeys.add(server, tlspubkeys.AddKey(account="alice", cert_pem=pem, login_address="no address")))
    with pytest.raises(InvalidInput, match="not a certificate"):
        result(tlspubkeys.add(server, tlspubkeys.AddKey(account="alice", cert_pem="garbage")))
    result(tlspubkeys.add(server, tlspubkeys.AddKey(account="alice", cert_pem=pem, login_address="ALICE@example.org")))
    with pytest.raises(Exists):
        result(tlspubkeys.add(server, tlspubkeys.AddKey(account="alice", cert_pem=pem)))
    with pytest.raises(InvalidInput, match="invalid fingerprint"):
        tlspubkeys.get(server, tlspubkeys.Fingerprint(fingerprint="!!"))


def test_directory_accounts_are_asked_of_the_provider(server: Server) -> None:
    """Under LDAP the account must be one the provider lets log in, spelt as it spells it."""
    import dataclasses

    from twisted.internet.defer import fail, succeed

    from mailsrv.auth.interfaces import LoginIdentity, TemporaryAuthFailure
    from mailsrv.config.types import LDAPConfig
    from mailsrv.ops.errors import TemporaryFailure

    ldap = LDAPConfig(uris=("ldap://127.0.0.1",), bind_dn="", bind_password_file=None, user_base="", user_filter="")
    server.config = dataclasses.replace(server.config, ldap=ldap)
    known = {"carol": LoginIdentity("Carol", None)}
    server.accounts.login_for_account = lambda account, address=None: succeed(known.get(account.lower()))  # type: ignore[method-assign]
    info = result(tlspubkeys.add(server, tlspubkeys.AddKey(account="CAROL", cert_pem=_cert_pem())))
    assert info.account == "Carol"
    with pytest.raises(NotFound, match="in the directory"):
        result(tlspubkeys.add(server, tlspubkeys.AddKey(account="dave", cert_pem=_cert_pem())))
    server.accounts.login_for_account = lambda account, address=None: fail(TemporaryAuthFailure("down"))  # type: ignore[method-assign]
    with pytest.raises(TemporaryFailure):
        result(tlspubkeys.add(server, tlspubkeys.AddKey(account="carol", cert_pem=_cert_pem())))


def test_generate_registers_the_key_and_returns_the_bundle(server: Server) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import pkcs12

    from mailsrv.tlsutil import fingerprint_text, spki_fingerprint

    made = result(tlspubkeys.generate(server, tlspubkeys.GenerateKey(account="alice", name="phone")))
    assert made.key.account == "alice" and made.key.name == "phone" and made.key.key_type == "ed25519"
    key, cert, extra = pkcs12.load_key_and_certificates(made.pkcs12, None)
    assert key is not None and cert is not None and not extra
    assert fingerprint_text(spki_fingerprint(cert)) == made.key.fingerprint
    assert x509.load_pem_x509_certificate(made.key.cert_pem.encode()) == cert
    assert made.private_key_pem.startswith("-----BEGIN PRIVATE KEY-----")
    assert made.openssl_commands[0] == "openssl genpkey -algorithm ed25519 -out phone.key"
    assert [k.fingerprint for k in tlspubkeys.list_keys(server, tlspubkeys.ListKeys(account="alice"))] == [
        made.key.fingerprint
    ]
    locked = result(tlspubkeys.generate(server, tlspubkeys.GenerateKey(account="alice", pkcs12_password="s3cret")))
    assert pkcs12.load_key_and_certificates(locked.pkcs12, b"s3cret")[0] is not None
    with pytest.raises(InvalidInput, match="key name"):
        result(tlspubkeys.generate(server, tlspubkeys.GenerateKey(account="alice", name="a b")))
    with pytest.raises(NotFound):
        result(tlspubkeys.generate(server, tlspubkeys.GenerateKey(account="nobody")))
