"""Client configuration documents from a real localserve / quickstart config: Thunderbird
autoconfig, Outlook autodiscover (including hostile request XML) and the Apple profile."""

from __future__ import annotations

import plistlib
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailsrv import localserve
from mailsrv.config.load import load_static
from mailsrv.ops import clientconfig
from mailsrv.ops.errors import InvalidInput, NotFound
from mailsrv.server import Server
from tests.ops.world import InlineReactor


@pytest.fixture
def localserve_server(tmp_path: Path) -> Iterator[Server]:
    config = localserve.prepare(tmp_path / "ls")
    server = Server.create(config, InlineReactor())
    yield server
    server.close()


@pytest.fixture
def quickstart_server(tmp_path: Path) -> Iterator[Server]:
    import os

    from mailsrv.quickstart import quickstart

    umask = os.umask(0o022)
    try:
        quickstart(
            tmp_path / "qs",
            "example.org",
            "admin@example.org",
            "admin-secret-1",
            None,
            None,
            "mail.example.org",
            ipv6=True,
        )
    finally:
        os.umask(umask)
    server = Server.create(load_static(tmp_path / "qs" / "mailsrv.toml"), InlineReactor())
    yield server
    server.close()


def _servers(doc: ET.Element, tag: str) -> list[tuple[str | None, str | None, str | None, str | None, str | None]]:
    return [
        (
            s.get("type"),
            s.findtext("hostname"),
            s.findtext("port"),
            s.findtext("socketType"),
            s.findtext("username"),
        )
        for s in doc.iter(tag)
    ]


def test_thunderbird_autoconfig_for_localserve(localserve_server: Server) -> None:
    settings = clientconfig.settings_for(localserve_server, "user@localhost")
    doc = ET.fromstring(clientconfig.thunderbird_autoconfig(settings))
    assert doc.tag == "clientConfig" and doc.get("version") == "1.1"
    provider = doc.find("emailProvider")
    assert provider is not None and provider.get("id") == "localhost"
    assert provider.findtext("domain") == "localhost"
    # Implicit TLS first; each port once although localserve also listens on ::1.
    assert _servers(doc, "incomingServer") == [
        ("imap", "localhost", "1993", "SSL", "user@localhost"),
        ("imap", "localhost", "1143", "STARTTLS", "user@localhost"),
    ]
    assert _servers(doc, "outgoingServer") == [
        ("smtp", "localhost", "1465", "SSL", "user@localhost"),
        ("smtp", "localhost", "1587", "STARTTLS", "user@localhost"),
    ]
    assert {a.text for a in doc.iter("authentication")} == {"password-cleartext"}


def test_thunderbird_autoconfig_for_quickstart(quickstart_server: Server) -> None:
    settings = clientconfig.settings_for(quickstart_server, "Admin@Example.org")
    doc = ET.fromstring(clientconfig.thunderbird_autoconfig(settings))
    assert _servers(doc, "incomingServer") == [
        ("imap", "mail.example.org", "993", "SSL", "Admin@example.org"),
        ("imap", "mail.example.org", "143", "STARTTLS", "Admin@example.org"),
    ]
    assert [(s[1], s[2], s[3]) for s in _servers(doc, "outgoingServer")] == [
        ("mail.example.org", "465", "SSL"),
        ("mail.example.org", "587", "STARTTLS"),
    ]


def test_plaintext_listeners_are_never_offered(tmp_path: Path) -> None:
    from mailsrv.address import Domain
    from mailsrv.config.types import ListenerConfig, StaticConfig

    config = StaticConfig(
        source=tmp_path / "m.toml",
        hostname=Domain.parse("mx.example.org"),
        data_dir=tmp_path,
        listeners=(
            ListenerConfig("imap", "imap", "0.0.0.0", 143, "none"),
            ListenerConfig("sub", "submission", "0.0.0.0", 587, "starttls"),
        ),
    )
    assert clientconfig.endpoints(config, "imap") == ()
    assert clientconfig.endpoints(config, "submission") == (
        clientconfig.Endpoint("submission", "mx.example.org", 587, "starttls"),
    )


def test_unknown_domain_and_bad_address(localserve_server: Server) -> None:
    with pytest.raises(NotFound):
        clientconfig.settings_for(localserve_server, "user@example.com")
    with pytest.raises(InvalidInput):
        clientconfig.settings_for(localserve_server, "not an address")
    # An unknown user of our domain gets the same document: existence is not revealed.
    assert clientconfig.settings_for(localserve_server, "nobody@localhost").imap


_REQUEST = b"""<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress>user@localhost</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>
"""


def test_autodiscover_round_trip(localserve_server: Server) -> None:
    address = clientconfig.autodiscover_address(_REQUEST)
    assert address == "user@localhost"
    body = clientconfig.autodiscover_response(clientconfig.settings_for(localserve_server, address))
    ns = {"r": clientconfig.RESPONSE_SCHEMA}
    doc = ET.fromstring(body)
    protocols = {
        p.findtext("r:Type", namespaces=ns): (
            p.findtext("r:Server", namespaces=ns),
            p.findtext("r:Port", namespaces=ns),
            p.findtext("r:Encryption", namespaces=ns),
            p.findtext("r:LoginName", namespaces=ns),
        )
        for p in doc.iter(f"{{{clientconfig.RESPONSE_SCHEMA}}}Protocol")
    }
    assert protocols == {
        "IMAP": ("localhost", "1993", "SSL", "user@localhost"),
        "SMTP": ("localhost", "1465", "SSL", "user@localhost"),
    }


@pytest.mark.parametrize(
    "body",
    [
        # Billion laughs: refused at the DOCTYPE, nothing expanded.
        b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xxxxxxxxxx"><!ENTITY y "&x;&x;&x;&x;&x;">]>'
        b"<Autodiscover><Request><EMailAddress>&y;</EMailAddress></Request></Autodiscover>",
        # External entity (XXE).
        b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        b"<Autodiscover><Request><EMailAddress>&e;</EMailAddress></Request></Autodiscover>",
        b'<!DOCTYPE a SYSTEM "http://example.com/a.dtd"><a/>',
        b"<Autodiscover><Request><EMailAddress>user@localhost",
        b"<Autodiscover><Request></Request></Autodiscover>",
        b"<EMailAddress>user@localhost</EMailAddress>",  # not inside Request
        b"",
        b"<a>" + b"x" * (clientconfig.MAX_AUTODISCOVER_REQUEST + 1) + b"</a>",
    ],
)
def test_autodiscover_refuses_hostile_or_broken_requests(body: bytes) -> None:
    with pytest.raises(InvalidInput):
        clientconfig.autodiscover_address(body)


def test_apple_profile_parses_and_has_no_password(localserve_server: Server) -> None:
    settings = clientconfig.settings_for(localserve_server, "user@localhost")
    data = clientconfig.apple_profile(settings, full_name="Local user")
    profile = plistlib.loads(data)
    assert profile["PayloadType"] == "Configuration" and profile["PayloadVersion"] == 1
    (account,) = profile["PayloadContent"]
    assert account["PayloadType"] == "com.apple.mail.managed"
    assert account["EmailAccountType"] == "EmailTypeIMAP"
    assert account["EmailAddress"] == "user@localhost" and account["EmailAccountName"] == "Local user"
    assert (account["IncomingMailServerHostName"], account["IncomingMailServerPortNumber"]) == ("localhost", 1993)
    assert (account["OutgoingMailServerHostName"], account["OutgoingMailServerPortNumber"]) == ("localhost", 1465)
    assert account["IncomingMailServerUseSSL"] is True and account["OutgoingMailServerUseSSL"] is True
    assert not any("Password" in key and key != "OutgoingPasswordSameAsIncomingPassword" for key in account)
    assert b"localserve" not in data  # the development password is nowhere in it
    # Stable identity: a second download replaces the installed profile.
    assert clientconfig.apple_profile(settings, full_name="Local user") == data
