"""The admin interface's JSON API over HTTP (in memory, a real Server on a fake clock): login
with the admin password, every method's success and its refusals, that an account session
never reaches an admin method, and that a non-loopback peer is refused."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailsrv.address import Address
from mailsrv.config.types import DNSConfig, ListenerConfig, WebConfig
from mailsrv.ops import accounts, adminauth, domains
from mailsrv.server import Server
from mailsrv.web.site import web_site
from tests.dnsserver import DNSServer
from tests.ops.world import make_server, result
from tests.web.apiclient import ApiCallError, ApiClient, memory_sender

LISTENER = ListenerConfig(name="http", protocol="http", address="127.0.0.1", port=80)
PREFIX = "/webadmin/"
PASSWORD = "admin-secret-1"


@pytest.fixture
def dns() -> Iterator[DNSServer]:
    with DNSServer() as d:
        yield d


@pytest.fixture
def server(tmp_path: Path, dns: DNSServer) -> Iterator[Server]:
    s = make_server(
        tmp_path,
        web=dataclasses.replace(WebConfig(), admin_path=PREFIX, account_path="/webaccount/"),
        dns=DNSConfig(nameservers=(dns.address,), timeout=1.0),
    )
    object.__setattr__(s.config, "listeners", (LISTENER,))
    domains.add(s, domains.AddDomain(domain="example.org"))
    result(accounts.add(s, accounts.AddAccount(account="alice", address="alice@example.org", password="alice-pass")))
    adminauth.set_admin_password(s, adminauth.SetAdminPassword(password=PASSWORD))
    yield s
    s.close()


@pytest.fixture
def site(server: Server) -> Any:
    return web_site(server, LISTENER)


@pytest.fixture
def admin(site: Any) -> ApiClient:
    c = ApiClient.in_memory(site, PREFIX)
    c.login("admin", PASSWORD)
    return c


def _error(f: Any, *args: Any, **kwargs: Any) -> ApiCallError:
    with pytest.raises(ApiCallError) as caught:
        f(*args, **kwargs)
    return caught.value


def test_login_logout_and_refusals(site: Any) -> None:
    c = ApiClient.in_memory(site, PREFIX)
    assert _error(c.call, "Domains").code == "user:noAuth"
    assert _error(c.login, "admin", "wrong").code == "user:badAuth"
    assert _error(c.login, "alice", "alice-pass").code == "user:badAuth"  # an account is no admin
    c.login("admin", PASSWORD)
    assert c.call("Whoami") == "admin"
    assert _error(c.call, "Domains", csrf="not-the-token").code == "user:badAuth"
    c.call("Logout")
    assert _error(c.call, "Domains").code in ("user:noAuth", "user:badAuth")


def test_an_account_session_never_reaches_admin_methods(site: Any) -> None:
    account = ApiClient.in_memory(site, "/webaccount/")
    account.login("alice@example.org", "alice-pass")
    # The account's session cookie and CSRF token, presented to the admin API.
    intruder = ApiClient(account.send, PREFIX, cookies=dict(account.cookies), csrf=account.csrf)
    for method, params in (("Domains", []), ("AccountRemove", ["alice"]), ("QueueDrop", [{"all": True}])):
        assert _error(intruder.call, method, *params).code in ("user:noAuth", "user:badAuth")
    assert account.call("Account")["account"] == "alice"  # the account session itself still works


def test_non_loopback_peers_are_refused(site: Any, server: Server) -> None:
    remote = ApiClient(memory_sender(site, peer="192.0.2.9"), PREFIX)
    token = remote.call("LoginPrep")
    assert _error(remote.call, "Login", token, "admin", PASSWORD).code == "user:permissionDenied"
    # A session made on loopback does not work from elsewhere either.
    local = ApiClient.in_memory(site, PREFIX)
    local.login("admin", PASSWORD)
    moved = ApiClient(memory_sender(site, peer="192.0.2.9"), PREFIX, cookies=dict(local.cookies), csrf=local.csrf)
    assert _error(moved.call, "Domains").code == "user:permissionDenied"
    object.__setattr__(server.config, "web", dataclasses.replace(server.config.web, admin_on_all_listeners=True))
    assert moved.call("Whoami") == "admin"


def test_domains(admin: ApiClient, dns: DNSServer) -> None:
    added = admin.call("DomainAdd", "b\u00fccher.example", "+")
    assert added["domain"] == "xn--bcher-kva.example" and len(added["dkim"]) == 2
    assert [d["domain"] for d in admin.call("Domains")] == ["example.org", "xn--bcher-kva.example"]
    assert _error(admin.call, "DomainAdd", "example.org", "+").code == "user:exists"
    assert _error(admin.call, "DomainAdd", "not a domain", "+").code == "user:invalidInput"
    assert admin.call("DomainSetSeparator", "xn--bcher-kva.example", "-")["separator"] == "-"
    assert admin.call("DomainSetSeparator", "xn--bcher-kva.example", "")["separator"] == ""
    assert _error(admin.call, "DomainSetSeparator", "xn--bcher-kva.example", "@").code == "user:invalidInput"
    assert _error(admin.call, "DomainSetSeparator", "nope.example", "+").code == "user:notFound"
    records = admin.call("DomainDKIMRecords", "xn--bcher-kva.example")
    assert [r["value"] for r in records] == [r["value"] for r in added["dkim"]]
    assert _error(admin.call, "DomainDKIMRecords", "nope.example").code == "user:notFound"
    dns.add("example.org", "MX", "10 mail.example.org.")
    check = admin.call("DomainCheck", "example.org")
    items = {i["name"]: i for i in check["items"]}
    assert items["MX"]["status"] == "ok" and items["SPF"]["status"] == "error" and items["SPF"]["fix"]
    assert _error(admin.call, "DomainCheck", "nope.example").code == "user:notFound"
    error = _error(admin.call, "DomainRemove", "example.org")
    assert error.code == "user:invalidInput" and "alice" in error.message
    admin.call("DomainRemove", "xn--bcher-kva.example")
    assert _error(admin.call, "DomainRemove", "xn--bcher-kva.example").code == "user:notFound"


def test_domain_settings(admin: ApiClient, server: Server) -> None:
    shown = admin.call("Domain", "example.org")
    assert (shown["dmarc_reports"], shown["mta_sts_mode"], shown["mta_sts"]["mode"]) == ("", "", "testing")
    saved = admin.call(
        "DomainSettingsSave",
        {
            "domain": "example.org",
            "dmarc_reports": "alice+dmarc@example.org",
            "tlsrpt_reports": "tls@elsewhere.example",
            "mta_sts_mode": "enforce",
            "mta_sts_max_age": 86400,
        },
    )
    assert saved["dmarc_reports"] == "alice+dmarc@example.org" and saved["tlsrpt_reports"] == "tls@elsewhere.example"
    assert saved["mta_sts"]["mode"] == "enforce" and saved["mta_sts"]["max_age"] == 86400
    assert saved["mta_sts"]["id"] != shown["mta_sts"]["id"] and saved["separator"] == "+"
    assert admin.call("Domain", "example.org") == saved
    d = server.dynamic.current.domains["example.org"]
    assert (str(d.dmarc_reports), d.mta_sts_mode, d.mta_sts_max_age) == ("alice+dmarc@example.org", "enforce", 86400)
    # Only what is given changes.
    assert admin.call("DomainSettingsSave", {"domain": "example.org", "separator": "-"})["mta_sts_mode"] == "enforce"
    refusals = [
        ({"dmarc_reports": "nobody@example.org"}, "user:invalidInput", "no account has the address"),
        ({"tlsrpt_reports": "alice@example.org"}, "user:invalidInput", "primary address"),
        ({"mta_sts_mode": "strict"}, "user:invalidInput", "MTA-STS mode"),
        ({"mta_sts_max_age": 10**9}, "user:invalidInput", "RFC 8461"),
    ]
    for changes, code, message in refusals:
        error = _error(admin.call, "DomainSettingsSave", {"domain": "example.org", **changes})
        assert error.code == code and message in error.message, (changes, error.message)
    assert _error(admin.call, "DomainSettingsSave", {"domain": "nope.example"}).code == "user:notFound"
    assert _error(admin.call, "Domain", "nope.example").code == "user:notFound"
    assert _error(admin.call, "DomainSettingsSave", {"domain": "example.org", "mta_sts_max_age": "1d"}).code in (
        "user:invalidInput",
        "user:badRequest",
    )


def test_domain_reports(admin: ApiClient, server: Server) -> None:
    import msgspec

    from mailsrv.message.aggregatereports import DMARCSummary
    from mailsrv.ops import reports

    empty = admin.call("DomainReports", "example.org", 10)
    assert (empty["dmarc"], empty["tlsrpt"], empty["dmarc_failed"]) == ([], [], 0)
    summary = DMARCSummary(
        org="reporter.example", report_id="r-1", domain="example.org", begin=1, end=2, messages=5, passed=4, failed=1
    )
    store = reports.report_store(server)
    store.add("dmarc", "example.org", "reporter.example", "r-1", 1, 2, "alice", msgspec.json.encode(summary))
    found = admin.call("DomainReports", "example.org", 10)
    assert found["dmarc"][0]["report"]["report_id"] == "r-1" and found["dmarc"][0]["account"] == "alice"
    assert (found["dmarc_passed"], found["dmarc_failed"]) == (4, 1)
    assert _error(admin.call, "DomainReports", "nope.example", 10).code == "user:notFound"
    assert _error(admin.call, "DomainReports", "example.org", 1000).code == "user:invalidInput"


def test_accounts(admin: ApiClient, site: Any, server: Server) -> None:
    created = admin.call("AccountAdd", "bob", "bob@example.org", "Bob B")
    assert created["account"] == "bob" and len(created["password"]) >= 16
    bob = ApiClient.in_memory(site, "/webaccount/")
    bob.login("bob@example.org", created["password"])  # the generated password works
    assert _error(admin.call, "AccountAdd", "bob", "bob2@example.org", "").code == "user:exists"
    assert _error(admin.call, "AccountAdd", "x", "x@elsewhere.example", "").code == "user:invalidInput"
    page = admin.call("Accounts", "", "", 1)
    assert [a["account"] for a in page["accounts"]] == ["alice"] and page["next"] == "alice"
    page = admin.call("Accounts", "", page["next"], 1)
    assert [a["account"] for a in page["accounts"]] == ["bob"] and page["next"] is None
    assert [a["account"] for a in admin.call("Accounts", "BOB@", "", 10)["accounts"]] == ["bob"]
    assert _error(admin.call, "Accounts", "", "", 0).code == "user:invalidInput"
    assert admin.call("Account", "bob")["full_name"] == "Bob B"
    assert _error(admin.call, "Account", "nobody").code == "user:notFound"
    # Disabling ends the account's sessions and its logins.
    assert admin.call("AccountSetDisabled", "bob", True)["disabled"]
    assert _error(bob.call, "Account").code == "user:badAuth"
    assert _error(bob.login, "bob@example.org", created["password"]).code == "user:badAuth"
    assert not admin.call("AccountSetDisabled", "bob", False)["disabled"]
    admin.call("AccountSetPassword", "bob", "new-password-1")
    bob.login("bob@example.org", "new-password-1")
    assert _error(admin.call, "AccountSetPassword", "bob", "short").code == "user:invalidInput"
    assert admin.call("AccountSetQuota", "bob", 1 << 20) == 1 << 20
    assert admin.call("AccountSetQuota", "bob", 0) is None
    assert _error(admin.call, "AccountSetQuota", "bob", -1).code == "user:invalidInput"
    info = admin.call("AccountAddressAdd", "bob", "robert@example.org")
    assert info["addresses"] == ["bob@example.org", "robert@example.org"]
    assert _error(admin.call, "AccountAddressAdd", "bob", "alice@example.org").code == "user:invalidInput"
    assert admin.call("AccountFromIDAddressesSave", "bob", ["robert@example.org"]) == ["robert@example.org"]
    assert _error(admin.call, "AccountFromIDAddressesSave", "bob", ["alice@example.org"]).code == "user:invalidInput"
    assert admin.call("AccountAddressRemove", "bob", "robert@example.org")["addresses"] == ["bob@example.org"]
    assert admin.call("AccountKeepRetiredSave", "bob", 86400) == 86400
    assert _error(admin.call, "AccountKeepRetiredSave", "bob", -5).code == "user:invalidInput"
    assert admin.call("AccountTLSPublicKeys", "bob") == []
    assert _error(admin.call, "AccountTLSPublicKeys", "nobody").code == "user:notFound"
    assert _error(admin.call, "TLSPublicKeyRemove", "AAAA").code in ("user:notFound", "user:invalidInput")
    said = admin.call("AccountRemoveConsequences", "bob")
    assert said["addresses"] == ["bob@example.org"] and said["queued"] == 0
    admin.call("AccountRemove", "bob")
    assert _error(bob.call, "Account").code == "user:badAuth"
    assert _error(admin.call, "AccountRemove", "bob").code == "user:notFound"


def test_account_tls_keys(admin: ApiClient, server: Server) -> None:
    from mailsrv.ops import tlspubkeys

    generated = result(tlspubkeys.generate(server, tlspubkeys.GenerateKey(account="alice", name="phone")))
    [key] = admin.call("AccountTLSPublicKeys", "alice")
    assert key["fingerprint"] == generated.key.fingerprint
    admin.call("TLSPublicKeyRemove", key["fingerprint"])
    assert admin.call("AccountTLSPublicKeys", "alice") == []


def test_aliases(admin: ApiClient) -> None:
    settings = {"postPublic": True, "listMembers": False, "allowMsgFrom": False}
    info = admin.call("AliasAdd", "team@example.org", ["alice@example.org"], settings)
    assert info["members"] == ["alice@example.org"] and info["post_public"]
    assert _error(admin.call, "AliasAdd", "team@example.org", [], settings).code == "user:exists"
    error = _error(admin.call, "AliasMemberAdd", "team@example.org", "nobody@example.org")
    assert error.code == "user:invalidInput" and "not an account" in error.message
    admin.call("AccountAdd", "bob", "bob@example.org", "")
    assert admin.call("AliasMemberAdd", "team@example.org", "bob@example.org")["members"] == [
        "alice@example.org",
        "bob@example.org",
    ]
    assert admin.call("AliasMemberRemove", "team@example.org", "alice@example.org")["members"] == ["bob@example.org"]
    saved = admin.call("AliasSettingsSave", "team@example.org", {**settings, "listMembers": True})
    assert saved["list_members"] and saved["post_public"]
    assert [a["alias"] for a in admin.call("Aliases")] == ["team@example.org"]
    admin.call("AliasRemove", "team@example.org")
    assert _error(admin.call, "AliasRemove", "team@example.org").code == "user:notFound"
    assert _error(admin.call, "AliasAdd", "x@example.org", [], {"postPublic": 1}).code == "user:invalidInput"


def _queue(server: Server, count: int) -> list[int]:
    ids = []
    for i in range(count):
        sender = Address.parse("alice@example.org")
        rcpt = [Address.parse(f"r{i}@dest{i % 3}.example")]
        ids.append(result(server.queue.enqueue(sender, rcpt, b"Subject: x\r\n\r\nx\r\n", "alice", False)))
    return ids


def test_queue(admin: ApiClient, server: Server) -> None:
    ids = _queue(server, 7)
    page = admin.call("QueueList", {"limit": 3})
    assert [m["id"] for m in page["messages"]] == ids[:3] and page["next"]
    page = admin.call("QueueList", {"limit": 3, "after": page["next"]})
    assert [m["id"] for m in page["messages"]] == ids[3:6]
    assert [m["id"] for m in admin.call("QueueList", {"recipient": "@dest1.example"})["messages"]] == [ids[1], ids[4]]
    assert _error(admin.call, "QueueList", {"limit": 5000}).code == "user:invalidInput"
    assert _error(admin.call, "QueueList", {"sort": "nonsense"}).code == "user:invalidInput"
    assert _error(admin.call, "QueueList", {"bogus": 1}).code == "user:invalidInput"
    assert admin.call("QueueHold", {"recipient": "@dest0.example"}) == 3
    assert [m["id"] for m in admin.call("QueueList", {"held": True})["messages"]] == [ids[0], ids[3], ids[6]]
    assert admin.call("QueueRelease", {"ids": [ids[0]]}) == 1
    assert admin.call("QueueRetry", {"ids": [ids[1]]}) == 1
    assert admin.call("QueueNextAttempt", {"ids": [ids[1]], "when": 4e9}) == 1
    assert admin.call("QueueList", {"ids": [ids[1]]})["messages"][0]["next_attempt"] == 4e9
    assert admin.call("QueueRequireTLS", {"ids": [ids[2]], "required": True}) == 1
    assert admin.call("QueueHistory", ids[2])["message"]["requiretls"]
    assert _error(admin.call, "QueueHistory", 999999).code == "user:notFound"
    assert _error(admin.call, "QueueDrop", {}).code == "user:invalidInput"
    assert admin.call("QueueDrop", {"ids": [ids[5]]}) == 1
    assert admin.call("QueueDrop", {"ids": [ids[4]], "dsn": True, "reason": "no"}) == 1
    rule = admin.call("HoldRuleAdd", {"account": "alice"})
    assert rule["account"] == "alice" and admin.call("HoldRules") == [rule]
    assert _error(admin.call, "HoldRuleAdd", {"account": "nobody"}).code == "user:notFound"
    admin.call("HoldRuleRemove", rule["id"])
    assert _error(admin.call, "HoldRuleRemove", rule["id"]).code == "user:notFound"
    server.queue.db.execute("UPDATE message SET retired_until = 9e9 WHERE id = ?", (ids[0],))  # type: ignore[attr-defined]
    server.queue.db.commit()  # type: ignore[attr-defined]
    assert [m["id"] for m in admin.call("RetiredList", {})["messages"]] == [ids[0]]
    assert admin.call("RetiredPurge", {"ids": [ids[0]]}) == 1


def test_queue_transports(admin: ApiClient, server: Server) -> None:
    from mailsrv.config.transports import DIRECT, RouteConfig, TransportConfig, TransportsConfig
    from mailsrv.queue.routes import Routes

    config = TransportsConfig(
        {
            DIRECT: TransportConfig(DIRECT, "direct"),
            "provider": TransportConfig("provider", "submission", host="relay.example", port=587, username="u"),
        },
        (RouteConfig("provider", recipient_domains=frozenset({"dest1.example"})),),
    )
    object.__setattr__(server.config, "transports", config)
    server.queue.routes = Routes(config)  # type: ignore[attr-defined]
    ids = _queue(server, 3)
    assert [(t["name"], t["login"]) for t in admin.call("Transports")] == [("direct", False), ("provider", True)]
    assert [m["id"] for m in admin.call("QueueList", {"transport": "provider"})["messages"]] == [ids[1]]
    assert admin.call("QueueSetTransport", {"transport": "direct", "to": "provider"}) == 2
    listed = admin.call("QueueList", {"transport": "provider"})["messages"]
    assert [m["id"] for m in listed] == ids and listed[0]["recipients"][0]["transport_fixed"]
    assert admin.call("QueueSetTransport", {"ids": [ids[0]], "to": "routes"}) == 1
    assert admin.call("QueueHistory", ids[0])["message"]["recipients"][0]["transport"] == "direct"
    error = _error(admin.call, "QueueSetTransport", {"to": "nosuch"})
    assert (error.code, error.field) == ("user:invalidInput", "to")
    assert _error(admin.call, "QueueSetTransport", {"ids": [ids[0]]}).code == "user:invalidInput"  # `to` missing


def test_webhooks(admin: ApiClient, server: Server) -> None:
    from mailsrv.webhooks.store import NewHook

    assert server.webhooks is not None
    hooks = [NewHook(account="alice", kind="outgoing", event="delivered", payload=b"{}", queue_id=i) for i in (1, 2, 3)]
    ids = result(server.webhooks.add(hooks, 0))
    page = admin.call("WebhookQueue", {"limit": 2})
    assert [h["id"] for h in page["hooks"]] == ids[:2] and page["next"]
    assert [h["id"] for h in admin.call("WebhookQueue", {"limit": 2, "after": page["next"]})["hooks"]] == ids[2:]
    assert _error(admin.call, "WebhookQueue", {"limit": 0}).code == "user:invalidInput"
    assert admin.call("WebhookRetry", {"ids": [ids[0]]}) == 1
    assert admin.call("AccountWebhookKeepRetiredSave", "alice", 3600) == 3600
    assert _error(admin.call, "AccountWebhookKeepRetiredSave", "nobody", 60).code == "user:notFound"
    assert _error(admin.call, "WebhookDrop", {}).code == "user:invalidInput"
    assert admin.call("WebhookDrop", {"ids": [ids[1]]}) == 1
    retired = admin.call("WebhookRetired", {})
    assert [(h["id"], h["outcome"]) for h in retired["hooks"]] == [(ids[1], "dropped")]


def test_server_views(admin: ApiClient, server: Server) -> None:
    listeners = admin.call("ServerListeners")
    assert listeners["listeners"][0]["name"] == "http"
    assert admin.call("ServerConfig")["static"]["web"]["admin_path"] == PREFIX
    assert isinstance(admin.call("ServerErrors", 10), list)
    assert _error(admin.call, "ServerErrors", 0).code == "user:invalidInput"
    counts = admin.call("ServerCounts")
    assert counts["accounts"] == 1 and counts["domains"] == 1 and counts["queued"] == 0


def test_every_method_is_tested() -> None:
    """A new method must get a test here (its name appears in this file)."""
    from mailsrv.web.admin.api import AdminAPI
    from mailsrv.web.jsonapi import api_methods

    text = Path(__file__).read_text()
    missing = [name for name in api_methods(AdminAPI) if f'"{name}"' not in text]
    assert missing == []
