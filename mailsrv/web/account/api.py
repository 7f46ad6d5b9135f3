"""The account page's JSON API: everything an account may read or change of itself.

Each method is a thin adapter over the ops layer with the session's account filled in (never
an account named by the request). Results and parameters are the ops layer's Structs where
they fit; errors are ops errors, which the API framework turns into `user:...` codes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from mailsrv.config.junk import JunkSettings
from mailsrv.ops import accounts, accountself, clientconfig, junk, rules, tlspubkeys
from mailsrv.ops.errors import InvalidInput, NotFound
from mailsrv.ops.queue import Keep
from mailsrv.ops.queue import keep as queue_keep

if TYPE_CHECKING:
    from mailsrv.server import Server


class MailboxName(msgspec.Struct, kw_only=True):
    name: str
    messages: int
    size: int


class KeyAdd(msgspec.Struct, kw_only=True):
    cert_pem: str
    name: str = "device"
    login_address: str = ""
    no_imap_preauth: bool = False


class KeyGenerate(msgspec.Struct, kw_only=True):
    name: str = "device"
    login_address: str = ""
    no_imap_preauth: bool = False
    pkcs12_password: str = ""


class ClientSetup(msgspec.Struct, kw_only=True):
    """The account page's "set up your mail client" section."""

    settings: clientconfig.ClientSettings
    autoconfig_url: str  # Thunderbird's, for this address (clients find it by themselves)


def own_key(server: Server, account: str, fingerprint: str) -> tlspubkeys.KeyInfo:
    """The key if it belongs to `account`; NotFound otherwise (another account's key is not
    revealed to exist)."""
    try:
        key = tlspubkeys.get(server, tlspubkeys.Fingerprint(fingerprint=fingerprint))
    except NotFound:
        raise NotFound("no such key") from None
    if key.account != account:
        raise NotFound("no such key")
    return key


def junk_settings_dict(settings: JunkSettings) -> dict[str, Any]:
    out: dict[str, Any] = msgspec.to_builtins(settings)
    return out


def keep_seconds(server: Server, account: str, seconds: int) -> int:
    if seconds < 0 or seconds > 10 * 365 * 86400:
        raise InvalidInput("a keep period is 0 to 10 years in seconds", "seconds")
    return queue_keep(server, Keep(account=account, keep=str(seconds))).retired_keep


__all__ = [
    "ClientSetup",
    "KeyAdd",
    "KeyGenerate",
    "MailboxName",
    "accounts",
    "accountself",
    "junk",
    "junk_settings_dict",
    "keep_seconds",
    "own_key",
    "rules",
]
