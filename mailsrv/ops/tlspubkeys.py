"""TLS client-certificate public keys of accounts: add, list, get, remove.

A key is identified by its fingerprint (base64url SHA-256 of the SubjectPublicKeyInfo,
`mailsrv.tlsutil.fingerprint_text`) and belongs to one account. Adding refuses an account
that does not exist: from the dynamic config, or under LDAP from the directory through the
account provider that logins use (an entry that may not log in is refused too, and the
account is stored as the directory spells it). A change applies to the next connection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from mailsrv.address import Address, AddressError
from mailsrv.auth.credentials import DuplicateTLSPublicKey, TLSPublicKey, tls_public_key_from_pem
from mailsrv.auth.interfaces import TemporaryAuthFailure
from mailsrv.ops.errors import Exists, InvalidInput, NotFound, TemporaryFailure
from mailsrv.ops.operation import Done, Operation
from mailsrv.tlsutil import fingerprint_text, parse_fingerprint_text

if TYPE_CHECKING:
    from mailsrv.auth.credentials import CredentialStore
    from mailsrv.server import Server


class AddKey(msgspec.Struct, kw_only=True):
    account: str
    cert_pem: str
    name: str = "device"
    login_address: str | None = None  # None or "": the account's primary address
    no_imap_preauth: bool = False


class ListKeys(msgspec.Struct, kw_only=True):
    account: str | None = None  # None: every account's keys


class Fingerprint(msgspec.Struct, kw_only=True):
    fingerprint: str


class KeyInfo(msgspec.Struct, kw_only=True):
    fingerprint: str
    account: str
    name: str
    key_type: str
    login_address: str  # "": the account's primary address
    no_imap_preauth: bool
    cert_pem: str


class GenerateKey(msgspec.Struct, kw_only=True):
    account: str
    name: str = "device"
    login_address: str | None = None
    no_imap_preauth: bool = False
    pkcs12_password: str = ""  # "": the bundle is not encrypted (some clients insist on one)


class GeneratedKey(msgspec.Struct, kw_only=True):
    """The registered key, and what only this answer ever holds: the private key and the
    PKCS#12 bundle (base64 in JSON) for an email client; the server keeps neither."""

    key: KeyInfo
    private_key_pem: str
    pkcs12: bytes
    openssl_commands: list[str]  # the same by hand


class ClientCertificate(msgspec.Struct, frozen=True):
    key_pem: bytes
    cert_pem: bytes
    pkcs12: bytes


MAX_KEY_NAME = 64


def make_client_certificate(name: str, pkcs12_password: str = "") -> ClientCertificate:
    """A new ed25519 private key (PKCS#8 PEM), a minimal self-signed certificate for it
    (CN=name, 10 years) and both as PKCS#12, the format email clients import."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.hazmat.primitives.serialization import pkcs12

    from mailsrv.tlsutil import self_signed_certificate

    key = ed25519.Ed25519PrivateKey.generate()
    cert = self_signed_certificate(key, name, 3650)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(pkcs12_password.encode())
        if pkcs12_password
        else serialization.NoEncryption()
    )
    p12 = pkcs12.serialize_key_and_certificates(name.encode(), key, cert, None, encryption)
    return ClientCertificate(key_pem, cert.public_bytes(serialization.Encoding.PEM), p12)


def openssl_commands(name: str, account: str) -> list[str]:
    """How to make the same key, certificate and bundle with openssl, and register it."""
    return [
        f"openssl genpkey -algorithm ed25519 -out {name}.key",
        f"openssl req -new -x509 -key {name}.key -subj /CN={name} -days 3650 -out {name}.crt",
        f"openssl pkcs12 -export -inkey {name}.key -in {name}.crt -out {name}.p12 -passout pass:",
        f"mailsrv config tlspubkey add {account} {name}.crt",
    ]


async def generate(server: Server, req: GenerateKey) -> GeneratedKey:
    """Makes a key pair and certificate, registers its public key like `add` (same checks
    and errors), and returns the private parts once."""
    name = (req.name or "device").strip()
    if len(name) > MAX_KEY_NAME or not all(c.isalnum() or c in "-_." for c in name):
        raise InvalidInput(f"a key name is 1 to {MAX_KEY_NAME} letters, digits, '-', '_' or '.'", "name")
    made = make_client_certificate(name, req.pkcs12_password)
    info = await add(
        server,
        AddKey(
            account=req.account,
            cert_pem=made.cert_pem.decode(),
            name=name,
            login_address=req.login_address,
            no_imap_preauth=req.no_imap_preauth,
        ),
    )
    return GeneratedKey(
        key=info,
        private_key_pem=made.key_pem.decode(),
        pkcs12=made.pkcs12,
        openssl_commands=openssl_commands(name, info.account),
    )


def describe(key: TLSPublicKey) -> KeyInfo:
    return KeyInfo(
        fingerprint=fingerprint_text(key.fingerprint),
        account=key.account,
        name=key.name,
        key_type=key.key_type,
        login_address=key.login_address or "",
        no_imap_preauth=key.no_imap_preauth,
        cert_pem=key.cert_pem,
    )


def _credentials(server: Server) -> CredentialStore:
    return server.credentials


def _fingerprint(text: str) -> bytes:
    try:
        return parse_fingerprint_text(text)
    except ValueError as e:
        raise InvalidInput(f"invalid fingerprint: {e}", "fingerprint") from None


async def add(server: Server, req: AddKey) -> KeyInfo:
    login_address = req.login_address or None
    address: Address | None = None
    if login_address is not None:
        try:
            address = Address.parse(login_address)
        except AddressError as e:
            raise InvalidInput(f"invalid login address: {e}", "login_address") from None
    account = req.account
    if server.config.ldap is None:
        acc = server.dynamic.account_by_name(account)
        if acc is None:
            raise NotFound(f"no such account: {account}")
        if address is not None and address.key() not in {a.key() for a in acc.addresses}:
            raise InvalidInput(f"{login_address} is not an address of account {account}", "login_address")
    else:
        # Ask the directory through the provider logins use: it also checks that the entry
        # may log in (filter, mail group) and owns the login address.
        try:
            identity = await server.accounts.login_for_account(account, address)
        except TemporaryAuthFailure:
            raise TemporaryFailure("the directory cannot be reached to verify the account; try again") from None
        if identity is None:
            problem = f"no account {account} in the directory that may log in"
            if login_address is not None:
                problem += f", or {login_address} is not its address"
            raise NotFound(problem)
        account = identity.account
    try:
        key = tls_public_key_from_pem(
            account,
            req.name or "device",
            req.cert_pem,
            login_address=login_address,
            no_imap_preauth=req.no_imap_preauth,
        )
    except ValueError as e:
        raise InvalidInput(f"not a certificate: {e}", "cert_pem") from None
    try:
        _credentials(server).add_tls_public_key(key)
    except DuplicateTLSPublicKey:
        raise Exists("this public key is already registered (a key belongs to one account)") from None
    return describe(key)


def list_keys(server: Server, req: ListKeys) -> list[KeyInfo]:
    return [describe(k) for k in _credentials(server).list_tls_public_keys(req.account or None)]


def get(server: Server, req: Fingerprint) -> KeyInfo:
    key = _credentials(server).get_tls_public_key(_fingerprint(req.fingerprint))
    if key is None:
        raise NotFound("no such key")
    return describe(key)


def remove(server: Server, req: Fingerprint) -> Done:
    if not _credentials(server).remove_tls_public_key(_fingerprint(req.fingerprint)):
        raise NotFound("no such key")
    return Done()


OPERATIONS = (
    Operation("tlspubkey.add", add, AddKey, summary="register a client certificate's public key for an account"),
    Operation("tlspubkey.list", list_keys, ListKeys, summary="list registered keys"),
    Operation("tlspubkey.get", get, Fingerprint, summary="one key with its certificate"),
    Operation("tlspubkey.rm", remove, Fingerprint, summary="remove a key"),
)
