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
