"""How a mail client reaches this server: the IMAP and submission endpoints for an address,
and the documents clients fetch to configure themselves from them.

- Thunderbird autoconfig (`/mail/config-v1.1.xml?emailaddress=...`, the "clientConfig" format
  version 1.1 documented by Mozilla's autoconfig project),
- Microsoft Outlook autodiscover (POX, `/autodiscover/autodiscover.xml`, a POSTed request
  naming `EMailAddress`; the "outlook/responseschema/2006a" response),
- an Apple configuration profile (`.mobileconfig`, an XML property list with one
  `com.apple.mail.managed` payload), without the password: the device asks for it.

Endpoints come from the loaded static config: every `imap` and `submission` listener whose
TLS mode is "implicit" or "starttls", implicit TLS first (RFC 8314 §3 prefers it), all named
by the configured host name. Plaintext-only listeners are never offered: a client would send
the password in the clear. The address's domain must be one of ours, else `NotFound` (we
do not answer for other domains); whether the address itself exists is not revealed.
"""

from __future__ import annotations

import plistlib
import uuid
from typing import TYPE_CHECKING, Literal
from xml.parsers import expat
from xml.sax.saxutils import escape

import msgspec

from mailsrv.address import Address, AddressError
from mailsrv.config.types import StaticConfig
from mailsrv.ops.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from mailsrv.server import Server

Security = Literal["implicit", "starttls"]
MAX_AUTODISCOVER_REQUEST = 16 * 1024  # octets; a real request is a few hundred


class Endpoint(msgspec.Struct, frozen=True):
    """One way in: `protocol` "imap" or "submission", host name, port, how TLS starts."""

    protocol: Literal["imap", "submission"]
    host: str
    port: int
    security: Security


class ClientSettings(msgspec.Struct, frozen=True):
    """What a mail client needs for `address`, endpoints in order of preference."""

    address: str
    username: str  # the login name: the address itself (ops.login accepts any account address)
    domain: str  # the address's domain (U-label)
    imap: tuple[Endpoint, ...]
    submission: tuple[Endpoint, ...]


def endpoints(config: StaticConfig, protocol: Literal["imap", "submission"]) -> tuple[Endpoint, ...]:
    """The listeners of `protocol` with TLS, implicit TLS first, then by port; one entry per
    (port, TLS mode) even when it listens on several addresses (IPv4 and IPv6)."""
    host = config.hostname.unicode
    seen: set[tuple[int, str]] = set()
    found: list[Endpoint] = []
    for listener in config.listeners:
        if listener.protocol != protocol or listener.tls == "none":
            continue
        if (listener.port, listener.tls) in seen:
            continue
        seen.add((listener.port, listener.tls))
        found.append(Endpoint(protocol=protocol, host=host, port=listener.port, security=listener.tls))
    found.sort(key=lambda e: (e.security != "implicit", e.port))
    return tuple(found)


def settings_for(server: Server, address_text: str) -> ClientSettings:
    """The settings for `address_text`. Raises InvalidInput (not an address), NotFound (its
    domain is not one of ours)."""
    try:
        address = Address.parse(address_text.strip())
    except AddressError as e:
        raise InvalidInput(f"not an email address: {e}", "emailaddress") from None
    if not server.dynamic.is_local_domain(address.domain):
        raise NotFound("this server does not handle mail for that domain")
    config = server.config
    return ClientSettings(
        address=address.display(),
        username=address.display(),
        domain=address.domain.unicode,
        imap=endpoints(config, "imap"),
        submission=endpoints(config, "submission"),
    )


# --- Thunderbird autoconfig ------------------------------------------------------------------


def _attr(value: str) -> str:
    return escape(value, {'"': "&quot;"})


_THUNDERBIRD_SOCKET = {"implicit": "SSL", "starttls": "STARTTLS"}


def _tb_server(tag: str, kind: str, endpoint: Endpoint, username: str) -> str:
    return (
        f'    <{tag} type="{kind}">\n'
        f"      <hostname>{escape(endpoint.host)}</hostname>\n"
        f"      <port>{endpoint.port}</port>\n"
        f"      <socketType>{_THUNDERBIRD_SOCKET[endpoint.security]}</socketType>\n"
        f"      <username>{escape(username)}</username>\n"
        "      <authentication>password-cleartext</authentication>\n"
        f"    </{tag}>\n"
    )


def thunderbird_autoconfig(settings: ClientSettings) -> bytes:
    """The clientConfig 1.1 document: one incomingServer per IMAP endpoint and one
    outgoingServer per submission endpoint, in preference order (Thunderbird tries the first
    one that answers). "password-cleartext" is PLAIN/LOGIN, always inside TLS here."""
    domain = escape(settings.domain)
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n',
        '<clientConfig version="1.1">\n',
        f'  <emailProvider id="{_attr(settings.domain)}">\n',
        f"    <domain>{domain}</domain>\n",
        f"    <displayName>{domain}</displayName>\n",
        f"    <displayShortName>{domain}</displayShortName>\n",
    ]
    parts += [_tb_server("incomingServer", "imap", e, settings.username) for e in settings.imap]
    parts += [_tb_server("outgoingServer", "smtp", e, settings.username) for e in settings.submission]
    parts += ["  </emailProvider>\n", "</clientConfig>\n"]
    return "".join(parts).encode()


# --- Microsoft autodiscover (POX) ------------------------------------------------------------

RESPONSE_SCHEMA = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
_AUTODISCOVER_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"


class _RefusedXML(Exception):
    pass


def autodiscover_address(body: bytes) -> str:
    """The `EMailAddress` of an autodiscover request. The document is parsed with expat and
    any DOCTYPE is refused, so no entity (internal or external) is ever declared or expanded
    (the "billion laughs" and XXE classes). Raises InvalidInput for an oversized, malformed
    or entity-bearing document or one without an address."""
    if len(body) > MAX_AUTODISCOVER_REQUEST:
        raise InvalidInput("autodiscover request too large", "body")
    parser = expat.ParserCreate(namespace_separator=" ")
    stack: list[str] = []
    found: list[str] = []
    text: list[str] = []

    def refuse(*_: object) -> None:
        raise _RefusedXML("DOCTYPE and entity declarations are not accepted")

    def start(name: str, _attrs: object) -> None:
        stack.append(name.rsplit(" ", 1)[-1])
        text.clear()

    def end(_name: str) -> None:
        local = stack.pop()
        if local == "EMailAddress" and stack[-1:] == ["Request"] and not found:
            found.append("".join(text).strip())
        text.clear()

    def chars(data: str) -> None:
        if len(text) < 64:  # bound what one element can accumulate
            text.append(data)

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse  # type: ignore[assignment]
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    try:
        parser.Parse(body, True)
    except _RefusedXML as e:
        raise InvalidInput(str(e), "body") from None
    except expat.ExpatError as e:
        raise InvalidInput(f"malformed XML: {expat.ErrorString(e.code)}", "body") from None
    if not found or not found[0]:
        raise InvalidInput("no Request/EMailAddress in the autodiscover request", "EMailAddress")
    return found[0]


def _ad_protocol(kind: str, endpoint: Endpoint, username: str) -> str:
    # Encryption "SSL": TLS from the first byte; "TLS": STARTTLS (the schema's words).
    encryption = "SSL" if endpoint.security == "implicit" else "TLS"
    return (
        "      <Protocol>\n"
        f"        <Type>{kind}</Type>\n"
        f"        <Server>{escape(endpoint.host)}</Server>\n"
        f"        <Port>{endpoint.port}</Port>\n"
        f"        <LoginName>{escape(username)}</LoginName>\n"
        "        <SPA>off</SPA>\n"
        "        <SSL>on</SSL>\n"
        f"        <Encryption>{encryption}</Encryption>\n"
        "        <AuthRequired>on</AuthRequired>\n"
        "      </Protocol>\n"
    )


def autodiscover_response(settings: ClientSettings) -> bytes:
    """The POX response: the preferred IMAP and submission endpoint each (Outlook reads one
    protocol entry per type)."""
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n',
        f'<Autodiscover xmlns="{_AUTODISCOVER_NS}">\n',
        f'  <Response xmlns="{RESPONSE_SCHEMA}">\n',
        "    <Account>\n",
        "      <AccountType>email</AccountType>\n",
        "      <Action>settings</Action>\n",
    ]
    if settings.imap:
        parts.append(_ad_protocol("IMAP", settings.imap[0], settings.username))
    if settings.submission:
        parts.append(_ad_protocol("SMTP", settings.submission[0], settings.username))
    parts += ["    </Account>\n", "  </Response>\n", "</Autodiscover>\n"]
    return "".join(parts).encode()


# --- Apple configuration profile -------------------------------------------------------------

_PROFILE_NAMESPACE = uuid.UUID("0d6f3b8e-6a52-4f0e-9d55-8f7f1a8a3c21")


def apple_profile(settings: ClientSettings, full_name: str = "") -> bytes:
    """A `.mobileconfig` (XML plist) with one mail account payload; no password in it. The
    identifiers and UUIDs derive from the address, so installing a newer download replaces
    the older profile instead of adding a second account."""
    if not settings.imap or not settings.submission:
        raise NotFound("this server has no IMAP or submission listener with TLS to configure")
    imap, submission = settings.imap[0], settings.submission[0]
    reverse_host = ".".join(reversed(imap.host.split(".")))
    ident = f"{reverse_host}.mailsrv.{settings.address}"
    account: dict[str, object] = {
        "PayloadType": "com.apple.mail.managed",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{ident}.account",
        "PayloadUUID": str(uuid.uuid5(_PROFILE_NAMESPACE, ident + "/account")).upper(),
        "PayloadDisplayName": settings.address,
        "EmailAccountType": "EmailTypeIMAP",
        "EmailAccountDescription": settings.address,
        "EmailAccountName": full_name,
        "EmailAddress": settings.address,
        "IncomingMailServerAuthentication": "EmailAuthPassword",
        "IncomingMailServerHostName": imap.host,
        "IncomingMailServerPortNumber": imap.port,
        # Apple's UseSSL also means STARTTLS on a plaintext port; it refuses a cleartext login.
        "IncomingMailServerUseSSL": True,
        "IncomingMailServerUsername": settings.username,
        "OutgoingMailServerAuthentication": "EmailAuthPassword",
        "OutgoingMailServerHostName": submission.host,
        "OutgoingMailServerPortNumber": submission.port,
        "OutgoingMailServerUseSSL": True,
        "OutgoingMailServerUsername": settings.username,
        "OutgoingPasswordSameAsIncomingPassword": True,
    }
    profile: dict[str, object] = {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": ident,
        "PayloadUUID": str(uuid.uuid5(_PROFILE_NAMESPACE, ident)).upper(),
        "PayloadDisplayName": f"Mail account {settings.address}",
        "PayloadDescription": f"IMAP and submission settings for {settings.address} at {imap.host}",
        "PayloadRemovalDisallowed": False,
        "PayloadContent": [account],
    }
    return plistlib.dumps(profile, fmt=plistlib.FMT_XML, sort_keys=True)
