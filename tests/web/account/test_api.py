"""The account page's JSON API over HTTP (in memory, a real Server on a fake clock): every
method's success and its refusals, parameter validation, and that an account only ever
reaches its own data."""

from __future__ import annotations

import base64
import dataclasses
import plistlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import pkcs12

from mailsrv.config.types import ListenerConfig, WebConfig
from mailsrv.ops import accounts, aliases, domains, junk
from mailsrv.server import Server
from mailsrv.web.site import web_site
from tests.ops.world import make_server, result
from tests.web.apiclient import ApiCallError, ApiClient

LISTENER = ListenerConfig(name="http", protocol="http", address="127.0.0.1", port=80)
PREFIX = "/webaccount/"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = make_server(tmp_path, web=dataclasses.replace(WebConfig(), account_path=PREFIX))
    object.__setattr__(
        s.config,
        "listeners",
        (
            LISTENER,
            ListenerConfig("imaps", "imap", "0.0.0.0", 993, "implicit"),
            ListenerConfig("submission", "submission", "0.0.0.0", 587, "starttls"),
        ),
    )
    domains.add(s, domains.AddDomain(domain="example.org"))
    for name in ("alice", "bob"):
        result(
            accounts.add(s, accounts.AddAccount(account=name, address=f"{name}@example.org", password=f"{name}-pass"))
        )
    junk.install(s)
    yield s
    s.close()


@pytest.fixture
def site(server: Server) -> Any:
    return web_site(server, LISTENER)


def _client(site: Any, who: str) -> ApiClient:
    c = ApiClient.in_memory(site, PREFIX)
    c.login(f"{who}@example.org", f"{who}-pass")
    return c


@pytest.fixture
def alice(site: Any) -> ApiClient:
    return _client(site, "alice")


@pytest.fixture
def bob(site: Any) -> ApiClient:
    return _client(site, "bob")


def _error(client: ApiClient, method: str, *params: Any) -> ApiCallError:
    with pytest.raises(ApiCallError) as info:
        client.call(method, *params)
    return info.value


def test_every_method_needs_a_session(site: Any) -> None:
    anonymous = ApiClient.in_memory(site, PREFIX)
    for method, params in (("Account", ()), ("TLSPublicKeys", ()), ("Rulesets", ()), ("SetPassword", ("a", "b"))):
        assert _error(anonymous, method, *params).code == "user:noAuth"


def test_account_and_full_name(server: Server, alice: ApiClient, bob: ApiClient) -> None:
    aliases.add(server, aliases.AddAlias(alias="team@example.org", members=["alice@example.org"], list_members=True))
    seen = alice.call("Account")
    assert seen["account"] == "alice" and seen["addresses"] == ["alice@example.org"]
    assert seen["aliases"] == [
        {
            "address": "team@example.org",
            "members": ["alice@example.org"],
            "post_public": False,
            "list_members": True,
            "allow_msg_from": False,
        }
    ]
    assert seen["usage"] == 0 and seen["quota"] is None and seen["fromid_login_addresses"] == []
    assert alice.call("AccountSaveFullName", " Alice A. ") == "Alice A."
    assert alice.call("Account")["full_name"] == "Alice A."
    assert bob.call("Account")["full_name"] == ""
    error = _error(alice, "AccountSaveFullName", "x\r\nBcc: y")
    assert error.code == "user:invalidInput" and error.field == "full_name" and error.status == 400
    assert _error(alice, "AccountSaveFullName", 5).code == "user:invalidInput"
    assert _error(alice, "AccountSaveFullName").code == "user:invalidInput"


def test_password_change_ends_the_other_sessions(site: Any, alice: ApiClient) -> None:
    other = _client(site, "alice")
    error = _error(alice, "SetPassword", "wrong", "brand-new-pw")
    assert error.code == "user:invalidInput" and error.field == "current"
    assert _error(alice, "SetPassword", "alice-pass", "short").field == "password"
    assert alice.call("SetPassword", "alice-pass", "brand-new-pw") == 1
    assert alice.call("Account")["account"] == "alice"  # this session stays
    assert _error(other, "Account").code == "user:badAuth"
    fresh = ApiClient.in_memory(site, PREFIX)
    fresh.login("alice@example.org", "brand-new-pw")
    with pytest.raises(ApiCallError):
        ApiClient.in_memory(site, PREFIX).login("alice@example.org", "alice-pass")


def test_client_settings_and_apple_profile(alice: ApiClient) -> None:
    settings = alice.call("ClientSettings")
    assert settings["username"] == "alice@example.org"
    assert settings["imap"] == [{"protocol": "imap", "host": "mail.example.org", "port": 993, "security": "implicit"}]
    assert settings["submission"][0]["security"] == "starttls"
    profile = plistlib.loads(base64.b64decode(alice.call("AppleProfile")))
    assert profile["PayloadContent"][0]["EmailAddress"] == "alice@example.org"


def test_keep_period_fromid_and_mailboxes(server: Server, alice: ApiClient) -> None:
    assert alice.call("KeepRetiredPeriodSave", 7 * 86400) == 7 * 86400
    assert alice.call("Account")["retired_keep"] == 7 * 86400
    assert _error(alice, "KeepRetiredPeriodSave", -1).field == "seconds"
    assert alice.call("FromIDLoginAddressesSave", ["alice@example.org"]) == ["alice@example.org"]
    assert alice.call("Account")["fromid_login_addresses"] == ["alice@example.org"]
    assert _error(alice, "FromIDLoginAddressesSave", ["bob@example.org"]).code == "user:invalidInput"
    names = [m["name"] for m in alice.call("Mailboxes")]
    assert "INBOX" in names and "Sent" in names


def test_tls_keys_are_per_account(alice: ApiClient, bob: ApiClient) -> None:
    made = alice.call("TLSPublicKeyGenerate", {"name": "laptop", "pkcs12_password": "p12-secret"})
    key, cert, _ = pkcs12.load_key_and_certificates(base64.b64decode(made["pkcs12"]), b"p12-secret")
    assert key is not None and cert is not None and made["key"]["account"] == "alice"
    assert made["openssl_commands"][0].startswith("openssl genpkey")
    assert [k["name"] for k in alice.call("TLSPublicKeys")] == ["laptop"] and bob.call("TLSPublicKeys") == []
    fingerprint = made["key"]["fingerprint"]
    # Bob can neither remove alice's key nor register her certificate.
    assert _error(bob, "TLSPublicKeyRemove", fingerprint).code == "user:notFound"
    assert _error(bob, "TLSPublicKeyAdd", {"cert_pem": made["key"]["cert_pem"]}).code == "user:exists"
    assert _error(alice, "TLSPublicKeyRemove", "nonsense").code == "user:notFound"
    assert _error(alice, "TLSPublicKeyAdd", {"cert_pem": "nonsense"}).field == "cert_pem"
    assert _error(alice, "TLSPublicKeyAdd", {"cert_pem": "x", "extra": 1}).code == "user:invalidInput"
    assert _error(alice, "TLSPublicKeyGenerate", {"login_address": "bob@example.org"}).code == "user:invalidInput"
    assert _error(alice, "TLSPublicKeyGenerate", {"name": "a b"}).field == "name"
    alice.call("TLSPublicKeyRemove", fingerprint)
    assert alice.call("TLSPublicKeys") == []
    added = bob.call("TLSPublicKeyAdd", {"cert_pem": made["key"]["cert_pem"], "name": "phone", "no_imap_preauth": True})
    assert added["account"] == "bob" and added["no_imap_preauth"] and added["fingerprint"] == fingerprint


def test_rulesets(alice: ApiClient, bob: ApiClient) -> None:
    first = {"msg_from": "@lists\\.example$", "mailbox": "Lists", "comment": "lists"}
    second = {"verified_domain": "example.net", "mailbox": "Net", "comment": "net"}
    assert alice.call("RulesetAdd", first) == 1
    assert alice.call("RulesetAdd", second) == 2
    assert [r["comment"] for r in alice.call("RulesetMove", 2, 1)] == ["net", "lists"]
    changed = {"msg_from": "@other$", "mailbox": "Other", "comment": "changed", "accept_regardless": True}
    alice.call("RulesetSave", 2, changed)
    assert alice.call("Rulesets") == [second, changed]
    assert bob.call("Rulesets") == []
    assert _error(bob, "RulesetRemove", 1).code == "user:notFound"
    assert _error(alice, "RulesetAdd", {"msg_from": "(", "mailbox": "X"}).code == "user:invalidInput"
    assert _error(alice, "RulesetAdd", {"mailbox": "X", "bogus": 1}).code == "user:invalidInput"
    assert _error(alice, "RulesetMove", 1, 9).field == "to"
    alice.call("RulesetRemove", 1)
    assert alice.call("Rulesets") == [changed]


def test_junk_settings(alice: ApiClient, bob: ApiClient) -> None:
    settings = alice.call("JunkSettings")
    assert settings["enabled"] is True
    settings.update(enabled=False, threshold=0.9, ignored_words=["lottery"])
    saved = alice.call("JunkSettingsSave", settings)
    assert saved == settings and alice.call("JunkSettings") == settings
    assert bob.call("JunkSettings")["enabled"] is True
    assert _error(alice, "JunkSettingsSave", {**settings, "threshold": 0.2}).field == "threshold"
    assert _error(alice, "JunkSettingsSave", {**settings, "nope": 1}).code == "user:invalidInput"
    assert alice.call("JunkStats") == {"ham_messages": 0, "spam_messages": 0, "words": 0}


def test_suppressions(alice: ApiClient, bob: ApiClient) -> None:
    entry = alice.call("SuppressionAdd", "Someone+tag@example.net", "bounced")
    assert entry["base_address"] == "someone@example.net" and entry["manual"]
    assert [e["base_address"] for e in alice.call("Suppressions")] == ["someone@example.net"]
    assert bob.call("Suppressions") == []
    assert _error(bob, "SuppressionRemove", "someone@example.net").code == "user:notFound"
    assert _error(alice, "SuppressionAdd", "not an address", "").field == "address"
    alice.call("SuppressionRemove", "someone@example.net")
    assert alice.call("Suppressions") == []


def test_logout(alice: ApiClient) -> None:
    alice.call("Logout")
    assert _error(alice, "Account").code in ("user:noAuth", "user:badAuth")


def test_openapi_document_lists_the_methods(site: Any) -> None:
    import json

    from tests.web.memhttp import get

    document = json.loads(get(site, f"{PREFIX}api/openapi.json").body)
    paths = set(document["paths"])
    for method in ("Account", "SetPassword", "TLSPublicKeyGenerate", "RulesetMove", "JunkSettingsSave", "Suppressions"):
        assert f"/{method}" in paths, method


def test_webhooks(alice: ApiClient, bob: ApiClient) -> None:
    overview = alice.call("Webhooks")
    assert "delivered" in overview["events"] and overview["settings"]["outgoing_url"] == ""
    saved = alice.call("OutgoingWebhookSave", "https://hooks.example.com/out", "Basic YTpi", ["delivered", "failed"])
    assert saved["outgoing_url"] == "https://hooks.example.com/out" and saved["outgoing_events"] == [
        "delivered",
        "failed",
    ]
    assert alice.call("IncomingWebhookSave", "https://hooks.example.com/in", "")["incoming_url"].endswith("/in")
    assert bob.call("Webhooks")["settings"]["outgoing_url"] == ""
    assert _error(alice, "OutgoingWebhookSave", "https://x.example/", "", ["nonsense"]).field == "events"
    assert _error(alice, "OutgoingWebhookSave", "ftp://x.example/", "", []).field == "url"
    assert _error(alice, "IncomingWebhookSave", "https://x.example/", "a\nb").field == "authorization"
    assert not alice.call("Webhooks")["settings"]["has_secret"]
    secret = alice.call("WebhookSecretRotate")["secret"]
    assert secret.startswith("whsec_") and alice.call("Webhooks")["settings"]["has_secret"]
    assert alice.call("WebhookSecretRotate")["secret"] != secret
    assert alice.call("KeepRetiredWebhookPeriodSave", 3600) == 3600
    assert alice.call("Webhooks")["settings"]["retired_keep"] == 3600
    assert _error(alice, "KeepRetiredWebhookPeriodSave", -5).field == "seconds"


def test_api_tokens(server: Server, site: Any, alice: ApiClient, bob: ApiClient) -> None:
    from tests.web.memhttp import exchange

    made = alice.call("ApiTokenAdd", "shop", 30)
    assert made["token"].startswith("mailsrv_") and made["info"]["name"] == "shop" and made["info"]["expires"]
    listed = alice.call("ApiTokens")
    assert [t["name"] for t in listed] == ["shop"] and "token" not in listed[0]
    assert bob.call("ApiTokens") == []
    assert _error(alice, "ApiTokenAdd", "shop", 0).code == "user:exists"
    assert _error(alice, "ApiTokenAdd", "", 0).field == "name"
    assert _error(alice, "ApiTokenAdd", "x", -1).field == "expires_days"
    assert _error(bob, "ApiTokenRemove", "shop").code == "user:notFound"  # not bob's

    # The token is the webapi's Basic password for alice's address, not the account page's.
    object.__setattr__(server.config, "web", dataclasses.replace(server.config.web, webapi_enabled=True))
    webapi = web_site(server, LISTENER)
    basic = base64.b64encode(f"alice@example.org:{made['token']}".encode())
    raw = (
        b"POST /webapi/v0/SuppressionList HTTP/1.1\r\nhost: x\r\nauthorization: Basic %s\r\n"
        b"content-type: application/json\r\ncontent-length: 2\r\n\r\n{}" % basic
    )
    assert exchange(webapi, raw).status == 200
    page = ApiClient.in_memory(site, PREFIX)
    with pytest.raises(ApiCallError):
        page.login("alice@example.org", made["token"])
    alice.call("ApiTokenRemove", "shop")
    assert alice.call("ApiTokens") == []
    assert exchange(webapi, raw).status == 401
