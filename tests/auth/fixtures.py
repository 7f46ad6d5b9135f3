"""A small account world for auth and SASL tests: accounts in a DynamicConfig and their
passwords in a CredentialStore with cheap argon2 parameters."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mailsrv.address import Address, Domain
from mailsrv.auth.credentials import CredentialStore
from mailsrv.auth.local import LocalAccountProvider
from mailsrv.auth.passwords import PasswordHasher
from mailsrv.config.types import AccountConfig, DomainConfig, DynamicConfig

PASSWORDS = {"alice": "correct horse", "bob": "bob-secret", "jos\u00e9": "p\u00e4ss"}


@dataclass
class FakeDynamic:
    current: DynamicConfig = field(default_factory=DynamicConfig)


def account(name: str, *addresses: str, disabled: bool = False) -> AccountConfig:
    addrs = tuple(Address.parse(a) for a in addresses)
    return AccountConfig(name=name, domain=addrs[0].domain, addresses=addrs, disabled=disabled)


def make_config() -> DynamicConfig:
    accounts = {
        "alice": account("alice", "alice@example.org", "Alice.Liddell@Example.org", "alias@xn--bcher-kva.example"),
        "bob": account("bob", "bob@example.org", disabled=True),
        # NFC name and address: "é" as U+00E9.
        "jos\u00e9": account("jos\u00e9", "jos\u00e9@example.org"),
        "nopass": account("nopass", "nopass@example.org"),
    }
    domains = {
        "example.org": DomainConfig(Domain.parse("example.org")),
        "xn--bcher-kva.example": DomainConfig(Domain.parse("bücher.example")),
    }
    return DynamicConfig(domains=domains, accounts=accounts)


def make_world(data_dir: Path) -> tuple[FakeDynamic, CredentialStore, LocalAccountProvider]:
    dynamic = FakeDynamic(make_config())
    creds = CredentialStore(data_dir, hasher=PasswordHasher.for_tests())
    for name, password in PASSWORDS.items():
        creds.set_password_blocking(name, password)
    return dynamic, creds, LocalAccountProvider(dynamic, creds)
