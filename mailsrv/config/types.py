"""Typed configuration.

`StaticConfig` comes from `mailsrv.toml` and is read once at start. `DynamicConfig` comes
from `data/dynamic.toml`: domains, accounts, aliases and per-account settings that admins
and users change at run time; the daemon rewrites it atomically and reloads it.

Every section is a frozen dataclass; `mailsrv.config.load` builds them from TOML and
reports an unknown key, a wrong type or a bad value with the file, the key path and what
was expected (`ConfigError`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from mailsrv.address import Address, Domain
from mailsrv.config.junk import JunkSettings
from mailsrv.config.transports import RouteConfig, TransportsConfig

Protocol = Literal["smtp", "submission", "imap", "http"]
TLSMode = Literal["none", "starttls", "implicit"]


class ConfigError(Exception):
    """A configuration problem: `str()` is one line naming file, key and problem."""

    def __init__(self, file: str | Path, key: str, problem: str) -> None:
        self.file = str(file)
        self.key = key
        self.problem = problem
        super().__init__(f"{file}: {key}: {problem}" if key else f"{file}: {problem}")


@dataclass(frozen=True)
class ListenerConfig:
    """One listening socket. `tls` is "implicit" (TLS from the first byte, e.g. 465/993),
    "starttls" (plaintext with STARTTLS offered, e.g. 25/587/143) or "none"."""

    name: str
    protocol: Protocol
    address: str
    port: int
    tls: TLSMode = "none"


@dataclass(frozen=True)
class TLSKeyPair:
    """A certificate chain and its private key, used for `hostnames` (SNI); the first pair
    is the default."""

    cert_file: Path
    key_file: Path
    hostnames: tuple[str, ...] = ()


@dataclass(frozen=True)
class LDAPConfig:
    """Optional directory backend for accounts (see docs/ldap.md)."""

    uris: tuple[str, ...]
    bind_dn: str
    bind_password_file: Path | None
    user_base: str
    user_filter: str  # with {address} / {username} placeholders, values RFC 4515-escaped
    account_attribute: str = "uid"
    address_attributes: tuple[str, ...] = ("mail",)
    display_name_attribute: str = "cn"
    quota_attribute: str | None = None
    mail_group_dn: str | None = None
    admin_group_dn: str | None = None
    starttls: bool = True
    require_tls: bool = True
    ca_file: Path | None = None
    timeout: float = 5.0
    cache_seconds: int = 3600
    # A directory administrator's admin session asks the directory again whether they are still in
    # admin_group_dn once this many seconds have passed since it last did (0: on every call).
    admin_recheck_seconds: int = 30


@dataclass(frozen=True)
class WebConfig:
    """[web]: where the interfaces are mounted on every HTTP listener (mailsrv/web/site.py)."""

    webmail_path: str = "/webmail/"
    account_path: str = "/webaccount/"
    admin_path: str = "/webadmin/"
    webapi_path: str = "/webapi/v0/"
    # The admin interface is served on loopback listeners only unless this is set.
    admin_on_all_listeners: bool = False
    # Strict-Transport-Security max-age sent on HTTPS listeners (RFC 6797); 0: no HSTS.
    hsts_max_age: int = 0
    # The HTTP listener (by name) that also serves Prometheus /metrics; None: no metrics.
    metrics_listener: str | None = None
    # Web sessions end after this many seconds without use, and this long after login at the latest.
    session_idle_timeout: int = 24 * 3600
    session_max_age: int = 7 * 24 * 3600
    # The webapi (docs/webapi.md): off unless enabled; quickstart's configs enable it, localserve always has it.
    webapi_enabled: bool = False


@dataclass(frozen=True)
class LimitsConfig:
    max_message_size: int = 50 * 1024 * 1024  # SMTP SIZE and IMAP APPENDLIMIT
    default_quota: int | None = None  # octets per account; None = no limit
    smtp_max_recipients: int = 1000
    smtp_max_line_length: int = 4096  # command lines; RFC 5321 §4.5.3.1.4 minimum is 512
    imap_max_line_length: int = 64 * 1024
    max_connections_per_ip: int = 50  # per listener; an IPv6 /64 counts as one address
    # All listeners together; 0: the open-file limit less a reserve (mailsrv/connlimit.py).
    max_connections: int = 0
    # Message data held in memory by all deliveries at once (SMTP spools to disk while
    # receiving); a message that does not fit is refused with 452 4.3.1 (mailsrv/spool.py).
    message_memory: int = 256 * 1024 * 1024
    # Seconds an HTTP request may take to arrive, whatever the client trickles.
    http_request_timeout: int = 30
    # Bytes of an HTTP request body; larger ones get 413 (uploads have their own limit).
    http_max_body: int = 1024 * 1024
    http_max_upload: int = 1024 * 1024 * 1024  # the paths site.py lists as uploads (mailbox import)
    login_failures_per_ip: int = 10  # per `login_failure_window` seconds
    login_failures_per_account: int = 20
    login_failure_window: int = 300
    # Verified-credentials cache (mailsrv.auth.logincache): seconds an entry lives (0: off), entries.
    login_cache_ttl: int = 60
    login_cache_size: int = 10_000


@dataclass(frozen=True)
class IMAPConfig:
    # RFC 9051 §6.2.3: refuse LOGIN/plaintext AUTHENTICATE before TLS, advertise LOGINDISABLED.
    login_disabled_without_tls: bool = True
    idle_timeout: int = 30 * 60
    unauthenticated_timeout: int = 60


@dataclass(frozen=True)
class SMTPConfig:
    # Where queue delivery connects on remote hosts: 25 except in tests (documented override).
    remote_port: int = 25
    command_timeout: int = 300
    # CA certificates (PEM) that verify remote MX hosts and MTA-STS policy hosts when
    # verification is required (MTA-STS enforce, REQUIRETLS); None: the system's store.
    tls_ca_file: Path | None = None
    # Port of MTA-STS policy hosts (RFC 8461 §3.3 fixes 443; tests serve policies elsewhere).
    mta_sts_port: int = 443
    # The account that receives postmaster@ and abuse@ of every domain (RFC 5321 §4.5.1) unless
    # an account or alias has that address; None: the domain's first account.
    postmaster_account: str | None = None
    # The MTA-STS policy the HTTPS listener serves for every local domain (RFC 8461):
    # "testing" (reports only, the default until the certificate is from a public CA),
    # "enforce", "none" (withdraws a policy), "off" (no policy served).
    mta_sts_mode: str = "testing"
    mta_sts_max_age: int = 7 * 86400  # seconds senders may cache the policy


@dataclass(frozen=True)
class DNSConfig:
    """The resolver (mailsrv.dns.resolver). No nameservers: the system's /etc/resolv.conf;
    tests point this at a DNS server on loopback."""

    nameservers: tuple[tuple[str, int], ...] = ()  # (ip, port), from "ip", "ip:port" or "[ip6]:port"
    timeout: float = 5.0  # seconds per query, all retries included


@dataclass(frozen=True)
class ACMEConfig:
    """[acme]: certificates from an ACME CA (RFC 8555) for `hostnames`, written to the first
    [[tls]] pair's files; HTTP-01 answered on the HTTP listener (port 80)."""

    directory_url: str
    hostnames: tuple[str, ...]
    email: str | None = None
    account_key_file: Path | None = None  # None: DATA_DIR/acme/account.pem


@dataclass(frozen=True)
class WebhooksConfig:
    """[webhooks]: outbound webhook calls (docs/webhooks.md)."""

    # Loopback, link-local and private addresses are refused as webhook targets unless set
    # (localserve allows them: the developer's receiver runs on the same machine).
    allow_private_targets: bool = False
    timeout: float = 30.0  # seconds for one call: connecting, sending, the response head


@dataclass(frozen=True)
class StaticConfig:
    """Everything in mailsrv.toml."""

    source: Path
    hostname: Domain
    data_dir: Path
    listeners: tuple[ListenerConfig, ...]
    tls: tuple[TLSKeyPair, ...] = ()
    ldap: LDAPConfig | None = None
    web: WebConfig = field(default_factory=WebConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    imap: IMAPConfig = field(default_factory=IMAPConfig)
    smtp: SMTPConfig = field(default_factory=SMTPConfig)
    dns: DNSConfig = field(default_factory=DNSConfig)
    junk: JunkSettings = field(default_factory=JunkSettings)  # [junk]: defaults for new accounts
    webhooks: WebhooksConfig = field(default_factory=WebhooksConfig)
    acme: ACMEConfig | None = None  # [acme]: absent, no ACME
    # [transports.NAME] and [[routes]]: how the queue delivers (mailsrv/config/transports.py)
    transports: TransportsConfig = field(default_factory=TransportsConfig)
    localserve: bool = False  # development mode (see docs/localserve.md)

    @property
    def dynamic_file(self) -> Path:
        return self.data_dir / "dynamic.toml"

    @property
    def control_socket(self) -> Path:
        return self.data_dir / "ctl.sock"


@dataclass(frozen=True)
class DomainConfig:
    name: Domain
    # "+" makes user+tag@domain reach user@domain; None disables it.
    localpart_catchall_separator: str | None = "+"
    # DKIM selectors whose keys (data/dkim/<domain>/<selector>.pem) sign submitted mail, each a
    # signature: an ed25519 and an RSA one (RFC 8463 §3: verifiers that lack ed25519 use RSA).
    dkim_selectors: tuple[str, ...] = ()
    description: str = ""
    # Where DMARC aggregate reports (RFC 7489 §7.2) and TLS reports (RFC 8460) about the domain go: the
    # rua=mailto: address of its _dmarc and _smtp._tls records. An account's address here (the reports
    # go to that account's "DMARC reports" / "TLS reports" mailbox) or an external mailbox. None: not set.
    dmarc_reports: Address | None = None
    tlsrpt_reports: Address | None = None
    # The MTA-STS policy served for the domain (RFC 8461 §3.2): "none", "testing", "enforce" or "off" (no
    # policy); None: [smtp] mta_sts_mode. max_age in seconds; None: [smtp] mta_sts_max_age.
    mta_sts_mode: str | None = None
    mta_sts_max_age: int | None = None


@dataclass(frozen=True)
class AccountConfig:
    """One account. `addresses` are all addresses delivered to it (the first is the primary
    and the default login address)."""

    name: str
    domain: Domain
    addresses: tuple[Address, ...]
    full_name: str = ""
    quota: int | None = None  # None: use LimitsConfig.default_quota; 0: no limit
    disabled: bool = False
    # Seconds the outgoing queue keeps this account's finished messages, with their attempt
    # history, in the retired list (`retired_keep = "7d"`); 0: removed when finished.
    retired_keep: int = 0
    # Login addresses whose submissions get a unique MAIL FROM per recipient (fromid, for
    # matching DSNs to messages: docs/webhooks.md).
    fromid_login_addresses: tuple[Address, ...] = ()
    # [[accounts.NAME.routes]]: the account's own routes, tried before mailsrv.toml's [[routes]].
    routes: tuple[RouteConfig, ...] = ()


@dataclass(frozen=True)
class AliasConfig:
    """A list address delivering to local members (SMTP issue)."""

    address: Address
    members: tuple[Address, ...]
    post_public: bool = False
    list_members: bool = False
    allow_msg_from: bool = False


@dataclass(frozen=True)
class DynamicConfig:
    domains: dict[str, DomainConfig] = field(default_factory=dict)  # key: A-label
    accounts: dict[str, AccountConfig] = field(default_factory=dict)  # key: account name
    aliases: dict[str, AliasConfig] = field(default_factory=dict)  # key: Address.key()
