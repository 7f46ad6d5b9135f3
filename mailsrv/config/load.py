"""Loading and validating the TOML configuration files.

Every problem raises `ConfigError(file, key_path, problem)`: one line that names the file,
the dotted key path (`listeners[2].port`) and what was expected. Unknown keys are errors, so
a typo never silently falls back to a default.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
import unicodedata
from collections.abc import Collection
from pathlib import Path
from typing import Any, TypeVar, cast, get_args

import msgspec

from mailsrv.address import Address, AddressError, Domain
from mailsrv.config.hostport import parse_host_port
from mailsrv.config.junk import JunkSettings
from mailsrv.config.junk import validate as validate_junk
from mailsrv.config.transports import dump_route, load_account_routes, load_transports
from mailsrv.config.types import (
    AccountConfig,
    ACMEConfig,
    AliasConfig,
    ConfigError,
    DNSConfig,
    DomainConfig,
    DynamicConfig,
    IMAPConfig,
    LDAPConfig,
    LimitsConfig,
    ListenerConfig,
    Protocol,
    SMTPConfig,
    StaticConfig,
    TLSKeyPair,
    TLSMode,
    WebConfig,
    WebhooksConfig,
)

T = TypeVar("T")


class _Table:
    """A TOML table being consumed: every read marks its key; `finish()` rejects the rest."""

    def __init__(self, file: Path, path: str, data: object) -> None:
        if not isinstance(data, dict):
            raise ConfigError(file, path, f"expected a table, got {_type_name(data)}")
        self.file = file
        self.path = path
        self.data: dict[str, Any] = data
        self.seen: set[str] = set()

    def key(self, name: str) -> str:
        part = _key_part(name)
        return f"{self.path}.{part}" if self.path else part

    def error(self, name: str, problem: str, index: int | None = None) -> ConfigError:
        """The error for key `name` of this table, or for its element `index` when it is an array."""
        key = self.key(name) if index is None else f"{self.key(name)}[{index}]"
        return ConfigError(self.file, key, problem)

    def _get(self, name: str, types: type | tuple[type, ...], what: str, default: Any, required: bool) -> Any:
        self.seen.add(name)
        if name not in self.data:
            if required:
                raise self.error(name, f"missing; expected {what}")
            return default
        value = self.data[name]
        # bool is an int in Python; a port given as `true` must still be refused.
        if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
            raise self.error(name, f"expected {what}, got boolean")
        if not isinstance(value, types):
            raise self.error(name, f"expected {what}, got {_type_name(value)}")
        return value

    def get_str(self, name: str, default: str | None = None, required: bool = False) -> Any:
        return self._get(name, str, "a string", default, required)

    def get_int(self, name: str, default: int | None = None, required: bool = False, minimum: int = 0) -> Any:
        value = self._get(name, int, "an integer", default, required)
        if value is not None and value < minimum:
            raise self.error(name, f"expected an integer >= {minimum}, got {value}")
        return value

    def get_port(self, name: str, default: int | None = None, required: bool = False) -> Any:
        value = self._get(name, int, "a port number 0-65535", default, required)
        if value is not None and not 0 <= value <= 65535:
            raise self.error(name, f"expected a port number 0-65535, got {value}")
        return value

    def get_float(self, name: str, default: float) -> float:
        return float(self._get(name, (int, float), "a number", default, False))

    def get_bool(self, name: str, default: bool) -> bool:
        return bool(self._get(name, bool, "true or false", default, False))

    def str_list(self, name: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        value = self._get(name, list, "a list of strings", None, False)
        if value is None:
            return default
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise ConfigError(self.file, f"{self.key(name)}[{i}]", f"expected a string, got {_type_name(item)}")
        return tuple(value)

    def table(self, name: str) -> _Table | None:
        self.seen.add(name)
        if name not in self.data:
            return None
        return _Table(self.file, self.key(name), self.data[name])

    def table_list(self, name: str) -> list[_Table]:
        value = self._get(name, list, "an array of tables ([[" + name + "]])", [], False)
        return [_Table(self.file, f"{self.key(name)}[{i}]", item) for i, item in enumerate(value)]

    def path_value(self, name: str, base: Path, required: bool = False, must_exist: bool = False) -> Path | None:
        text = self.get_str(name, required=required)
        if text is None:
            return None
        p = Path(text).expanduser()
        if not p.is_absolute():
            p = base / p
        if must_exist and not p.is_file():
            problem = "is not a regular file" if p.exists() else "does not exist"
            raise self.error(name, f"file {str(p)!r} {problem}")
        if must_exist and not os.access(p, os.R_OK):
            raise self.error(name, f"file {str(p)!r} is not readable by this user")
        return p

    def choice(self, name: str, literal_type: Any, default: T | None = None, required: bool = False) -> T:
        allowed = get_args(literal_type)
        value = self.get_str(name, default=cast(Any, default), required=required)
        if value not in allowed:
            raise self.error(name, f"expected one of {', '.join(allowed)}, got {value!r}")
        return cast(T, value)

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.seen)
        if unknown:
            raise self.error(unknown[0], "unknown key")


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _key_part(name: str) -> str:
    """A key as TOML writes it: bare when it can be, quoted otherwise (`domains."example.org"`)."""
    if _BARE_KEY.fullmatch(name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _type_name(value: object) -> str:
    return {
        dict: "table",
        list: "array",
        str: "string",
        int: "integer",
        float: "number",
        bool: "boolean",
    }.get(type(value), type(value).__name__)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(path, "", "file not found") from None
    except PermissionError:
        raise ConfigError(path, "", "permission denied") from None
    except tomllib.TOMLDecodeError as e:
        # tomllib's message ends with "(at line L, column C)".
        raise ConfigError(path, "", f"invalid TOML: {e}") from None
    except IsADirectoryError:
        raise ConfigError(path, "", "is a directory, expected a TOML file") from None
    except UnicodeDecodeError:
        raise ConfigError(path, "", "invalid TOML: not UTF-8") from None


def _domain(t: _Table, name: str, value: str) -> Domain:
    try:
        return Domain.parse(value)
    except AddressError as e:
        raise t.error(name, str(e)) from None


def _address(file: Path, key: str, value: str) -> Address:
    try:
        return Address.parse(value)
    except AddressError as e:
        raise ConfigError(file, key, str(e)) from None


def load_static(path: Path) -> StaticConfig:
    """Reads and validates mailsrv.toml, one loader per section. Raises ConfigError."""
    path = Path(path).absolute()
    base = path.parent
    root = _Table(path, "", _read_toml(path))
    hostname = _domain(root, "hostname", root.get_str("hostname", required=True))
    data_dir = root.path_value("data_dir", base, required=True)
    assert data_dir is not None
    localserve = root.get_bool("localserve", False)
    tls = _load_tls(root, base)
    listeners = _load_listeners(root, has_tls=bool(tls))
    ldap = _load_ldap(root, base)
    web = _load_web(root, listeners)
    limits = _load_limits(root)
    imap = _load_imap(root)
    smtp = _load_smtp(root, base)
    dns_config = _load_dns(root)
    junk = _load_junk(root)
    webhooks = _load_webhooks(root)
    acme = _load_acme(root, base, hostname, tls)
    transports = load_transports(root, base)
    root.finish()
    return StaticConfig(
        source=path,
        hostname=hostname,
        data_dir=data_dir,
        listeners=listeners,
        tls=tls,
        ldap=ldap,
        web=web,
        limits=limits,
        imap=imap,
        smtp=smtp,
        dns=dns_config,
        junk=junk,
        webhooks=webhooks,
        acme=acme,
        transports=transports,
        localserve=localserve,
    )


def _load_tls(root: _Table, base: Path) -> tuple[TLSKeyPair, ...]:
    """[[tls]] key pairs; every SNI name is served by one pair."""
    tls: list[TLSKeyPair] = []
    served: dict[str, str] = {}  # SNI name -> key path of the [[tls]] pair serving it
    for t in root.table_list("tls"):
        cert = t.path_value("cert_file", base, required=True, must_exist=True)
        key = t.path_value("key_file", base, required=True, must_exist=True)
        assert cert is not None and key is not None
        hostnames: list[str] = []
        for i, h in enumerate(t.str_list("hostnames")):
            # SNI carries A-labels (RFC 6066 §3), so names are kept as A-labels; "*." is a
            # one-label wildcard as in certificates (RFC 6125 §6.4.3).
            wildcard = h.startswith("*.")
            try:
                name = ("*." if wildcard else "") + Domain.parse(h[2:] if wildcard else h).ascii
            except AddressError as e:
                raise t.error("hostnames", str(e), index=i) from None
            if name in served:
                raise t.error("hostnames", f"{name} is already served by {served[name]}", index=i)
            served[name] = t.path
            hostnames.append(name)
        t.finish()
        tls.append(TLSKeyPair(cert, key, tuple(hostnames)))
    return tuple(tls)


def _load_listeners(root: _Table, has_tls: bool) -> tuple[ListenerConfig, ...]:
    """[[listeners]]: unique names, no two on one fixed address and port, TLS only with a key pair."""
    listeners: list[ListenerConfig] = []
    names: set[str] = set()
    sockets: dict[tuple[str, int], str] = {}
    for t in root.table_list("listeners"):
        protocol: Protocol = t.choice("protocol", Protocol, required=True)
        tls_mode: TLSMode = t.choice("tls", TLSMode, default="none")
        if protocol == "http" and tls_mode == "starttls":
            raise t.error("tls", "expected none or implicit for an http listener (HTTP has no STARTTLS)")
        name = t.get_str("name", default=f"{protocol}-{len(listeners)}")
        if not name:
            raise t.error("name", "expected a non-empty name")
        if name in names:
            raise t.error("name", f"duplicate listener name {name!r}")
        names.add(name)
        port = t.get_port("port", required=True)
        address = _listen_address(t, t.get_str("address", default="0.0.0.0"))
        # Port 0 asks the kernel for a free port (tests), so only fixed ports can clash.
        if port != 0 and (address, port) in sockets:
            raise t.error(
                "port", f"address {address} port {port} is already used by listener {sockets[address, port]!r}"
            )
        sockets[address, port] = name
        if tls_mode != "none" and not has_tls:
            raise t.error("tls", f"listener uses TLS ({tls_mode}) but no [[tls]] key pair is configured")
        t.finish()
        listeners.append(ListenerConfig(name, protocol, address, port, tls_mode))
    return tuple(listeners)


def _load_web(root: _Table, listeners: tuple[ListenerConfig, ...]) -> WebConfig:
    """[web]: the paths of the web interfaces, all different; the metrics listener is an
    HTTP listener."""
    web_t = root.table("web")
    web = WebConfig()
    if web_t is not None:
        web = WebConfig(
            webmail_path=_web_path(web_t, "webmail_path", web.webmail_path),
            account_path=_web_path(web_t, "account_path", web.account_path),
            admin_path=_web_path(web_t, "admin_path", web.admin_path),
            webapi_path=_web_path(web_t, "webapi_path", web.webapi_path),
            admin_on_all_listeners=web_t.get_bool("admin_on_all_listeners", web.admin_on_all_listeners),
            hsts_max_age=web_t.get_int("hsts_max_age", web.hsts_max_age, minimum=0),
            metrics_listener=web_t.get_str("metrics_listener", None),
            session_idle_timeout=web_t.get_int("session_idle_timeout", web.session_idle_timeout, minimum=60),
            session_max_age=web_t.get_int("session_max_age", web.session_max_age, minimum=60),
            webapi_enabled=web_t.get_bool("webapi_enabled", web.webapi_enabled),
        )
        paths = [("webmail_path", web.webmail_path), ("account_path", web.account_path)]
        paths += [("admin_path", web.admin_path), ("webapi_path", web.webapi_path)]
        for i, (path_key, value) in enumerate(paths):
            for other_key, other in paths[:i]:
                if value == other:
                    raise web_t.error(path_key, f"expected a path different from {other_key} ({other!r})")
        http_names = [listener.name for listener in listeners if listener.protocol == "http"]
        if web.metrics_listener is not None and web.metrics_listener not in http_names:
            problem = f"expected the name of an http listener {http_names}, got {web.metrics_listener!r}"
            raise web_t.error("metrics_listener", problem)
        web_t.finish()
    return web


def _load_limits(root: _Table) -> LimitsConfig:
    limits = LimitsConfig()
    lim_t = root.table("limits")
    if lim_t is not None:
        quota = lim_t.get_int("default_quota", None)
        limits = LimitsConfig(
            max_message_size=lim_t.get_int("max_message_size", limits.max_message_size, minimum=1024),
            default_quota=quota if quota else None,
            smtp_max_recipients=lim_t.get_int("smtp_max_recipients", limits.smtp_max_recipients, minimum=1),
            smtp_max_line_length=lim_t.get_int("smtp_max_line_length", limits.smtp_max_line_length, minimum=512),
            imap_max_line_length=lim_t.get_int("imap_max_line_length", limits.imap_max_line_length, minimum=1024),
            max_connections_per_ip=lim_t.get_int("max_connections_per_ip", limits.max_connections_per_ip, minimum=1),
            max_connections=lim_t.get_int("max_connections", limits.max_connections, minimum=0),
            http_request_timeout=lim_t.get_int("http_request_timeout", limits.http_request_timeout, minimum=1),
            http_max_body=lim_t.get_int("http_max_body", limits.http_max_body, minimum=1024),
            http_max_upload=lim_t.get_int("http_max_upload", limits.http_max_upload, minimum=1024),
            message_memory=lim_t.get_int("message_memory", limits.message_memory, minimum=1024 * 1024),
            login_failures_per_ip=lim_t.get_int("login_failures_per_ip", limits.login_failures_per_ip, minimum=1),
            login_failures_per_account=lim_t.get_int(
                "login_failures_per_account", limits.login_failures_per_account, minimum=1
            ),
            login_failure_window=lim_t.get_int("login_failure_window", limits.login_failure_window, minimum=1),
            login_cache_ttl=lim_t.get_int("login_cache_ttl", limits.login_cache_ttl, minimum=0),
            login_cache_size=lim_t.get_int("login_cache_size", limits.login_cache_size, minimum=0),
        )
        lim_t.finish()
    return limits


def _load_imap(root: _Table) -> IMAPConfig:
    imap = IMAPConfig()
    imap_t = root.table("imap")
    if imap_t is not None:
        imap = IMAPConfig(
            login_disabled_without_tls=imap_t.get_bool("login_disabled_without_tls", imap.login_disabled_without_tls),
            idle_timeout=imap_t.get_int("idle_timeout", imap.idle_timeout, minimum=1),
            unauthenticated_timeout=imap_t.get_int("unauthenticated_timeout", imap.unauthenticated_timeout, minimum=1),
        )
        imap_t.finish()
    return imap


def _load_smtp(root: _Table, base: Path) -> SMTPConfig:
    smtp = SMTPConfig()
    smtp_t = root.table("smtp")
    if smtp_t is not None:
        remote_port = smtp_t.get_port("remote_port", smtp.remote_port)
        mta_sts_port = smtp_t.get_port("mta_sts_port", smtp.mta_sts_port)
        for name, port in (("remote_port", remote_port), ("mta_sts_port", mta_sts_port)):
            if port == 0:
                raise smtp_t.error(name, "expected a port number 1-65535, got 0")
        smtp = SMTPConfig(
            remote_port=remote_port,
            command_timeout=smtp_t.get_int("command_timeout", smtp.command_timeout, minimum=1),
            tls_ca_file=smtp_t.path_value("tls_ca_file", base, must_exist=True),
            mta_sts_port=mta_sts_port,
            postmaster_account=smtp_t.get_str("postmaster_account", None),
            mta_sts_mode=smtp_t.get_str("mta_sts_mode", smtp.mta_sts_mode),
            mta_sts_max_age=smtp_t.get_int("mta_sts_max_age", smtp.mta_sts_max_age, minimum=1),
        )
        if smtp.mta_sts_mode not in ("testing", "enforce", "none", "off"):
            raise smtp_t.error("mta_sts_mode", f"expected testing, enforce, none or off, got {smtp.mta_sts_mode!r}")
        smtp_t.finish()
    return smtp


def _load_acme(root: _Table, base: Path, hostname: Domain, tls: tuple[TLSKeyPair, ...]) -> ACMEConfig | None:
    t = root.table("acme")
    if t is None:
        return None
    url = t.get_str("directory_url", required=True)
    if not url.startswith(("https://", "http://")):
        raise t.error("directory_url", f"expected an https:// URL, got {url!r}")
    if not tls:
        raise t.error("directory_url", "ACME writes the first [[tls]] pair's files: configure one")
    names = t.str_list("hostnames") or [hostname.ascii]
    hostnames = []
    for i, name in enumerate(names):
        try:
            hostnames.append(Domain.parse(name).ascii)
        except AddressError as e:
            raise ConfigError(t.file, f"{t.key('hostnames')}[{i}]", str(e)) from None
    config = ACMEConfig(
        directory_url=url,
        hostnames=tuple(hostnames),
        email=t.get_str("email", None),
        account_key_file=t.path_value("account_key_file", base),
    )
    t.finish()
    return config


def _load_webhooks(root: _Table) -> WebhooksConfig:
    t = root.table("webhooks")
    if t is None:
        return WebhooksConfig()
    timeout = t.get_float("timeout", WebhooksConfig.timeout)
    if not 1 <= timeout <= 300:
        raise t.error("timeout", f"expected seconds between 1 and 300, got {timeout}")
    allow = t.get_bool("allow_private_targets", False)
    t.finish()
    return WebhooksConfig(allow_private_targets=allow, timeout=timeout)


def _load_dns(root: _Table) -> DNSConfig:
    t = root.table("dns")
    if t is None:
        return DNSConfig()
    nameservers = []
    for i, text in enumerate(t.str_list("nameservers")):
        try:
            nameservers.append(parse_host_port(text, 53))
        except ValueError:
            raise ConfigError(
                t.file, f"{t.key('nameservers')}[{i}]", f'expected "ip" or "ip:port", got {text!r}'
            ) from None
    timeout = t.get_float("timeout", DNSConfig.timeout)
    if not 0 < timeout <= 60:
        raise t.error("timeout", f"expected seconds between 0 and 60, got {timeout}")
    t.finish()
    return DNSConfig(nameservers=tuple(nameservers), timeout=timeout)


def _load_junk(root: _Table) -> JunkSettings:
    """[junk]: the junk-filter settings new accounts start with (each account may change its own)."""
    t = root.table("junk")
    if t is None:
        return JunkSettings()
    try:
        settings = msgspec.convert(t.data, JunkSettings)
    except msgspec.ValidationError as e:
        # msgspec names the field as "$.name"; the config error names it as junk.name.
        text = str(e)
        field = text.rsplit("$.", 1)[-1].split("[", 1)[0].rstrip("`") if "$." in text else ""
        raise ConfigError(t.file, t.key(field) if field else "junk", text.split(" - at ", 1)[0]) from None
    problems = validate_junk(settings)
    if problems:
        raise t.error(problems[0][0], problems[0][1])
    t.seen.update(t.data)
    t.finish()
    return settings


def _listen_address(t: _Table, text: str) -> str:
    # Twisted's listenTCP binds an interface given as an IP literal, not a host name.
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise t.error("address", f"expected an IP address such as 0.0.0.0, :: or 127.0.0.1, got {text!r}") from None


def _web_path(t: _Table, name: str, default: str) -> str:
    value: str = t.get_str(name, default)
    if not (value.startswith("/") and value.endswith("/")) or "//" in value or not value.isascii():
        raise t.error(name, f"expected an ASCII URL path starting and ending with '/', got {value!r}")
    return value


def _load_ldap(root: _Table, base: Path) -> LDAPConfig | None:
    t = root.table("ldap")
    if t is None:
        return None
    uris = t.str_list("uris")
    if not uris:
        raise t.error("uris", "expected at least one ldap:// or ldaps:// URI")
    for i, uri in enumerate(uris):
        if not uri.startswith(("ldap://", "ldaps://")):
            raise t.error("uris", index=i, problem=f"expected an ldap:// or ldaps:// URI, got {uri!r}")
    defaults = LDAPConfig(uris=(), bind_dn="", bind_password_file=None, user_base="", user_filter="")
    quota_attr = t.get_str("quota_attribute", None)
    config = LDAPConfig(
        uris=uris,
        bind_dn=t.get_str("bind_dn", ""),
        bind_password_file=t.path_value("bind_password_file", base, must_exist=True),
        user_base=t.get_str("user_base", required=True),
        user_filter=t.get_str("user_filter", required=True),
        account_attribute=t.get_str("account_attribute", defaults.account_attribute),
        address_attributes=t.str_list("address_attributes", defaults.address_attributes),
        display_name_attribute=t.get_str("display_name_attribute", defaults.display_name_attribute),
        quota_attribute=quota_attr,
        mail_group_dn=t.get_str("mail_group_dn", None),
        admin_group_dn=t.get_str("admin_group_dn", None),
        starttls=t.get_bool("starttls", defaults.starttls),
        require_tls=t.get_bool("require_tls", defaults.require_tls),
        ca_file=t.path_value("ca_file", base, must_exist=True),
        timeout=_positive_float(t, "timeout", defaults.timeout),
        cache_seconds=t.get_int("cache_seconds", defaults.cache_seconds),
        admin_recheck_seconds=t.get_int("admin_recheck_seconds", defaults.admin_recheck_seconds),
    )
    if "{address}" not in config.user_filter and "{username}" not in config.user_filter:
        raise t.error("user_filter", "expected a filter with an {address} or {username} placeholder")
    t.finish()
    return config


def _positive_float(t: _Table, name: str, default: float) -> float:
    value = t.get_float(name, default)
    if not value > 0:
        raise t.error(name, f"expected a number of seconds > 0, got {value}")
    return value


def load_dynamic(path: Path, static: StaticConfig | None = None) -> DynamicConfig:
    """Reads and validates the dynamic config. A missing file is an empty config. Raises
    ConfigError. With `static`, accounts' routes must name its transports."""
    path = Path(path)
    if not path.exists():
        return DynamicConfig()
    return parse_dynamic(path, _read_toml(path), None if static is None else static.transports.names())


# RFC 5322 §3.2.3 atext symbols: a separator must be a character an unquoted localpart can hold,
# and not a letter or digit (that would split ordinary names).
_SEPARATORS = "!#$%&'*+-/=?^_`{|}~"
_DNS_LABELS = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)


def _account_name_problem(name: str) -> str | None:
    """Why `name` cannot name an account (it is a directory under data/accounts/), or None."""
    if not name:
        return "empty account name"
    if len(name) > 64:
        return "account name longer than 64 characters"
    if unicodedata.normalize("NFC", name) != name:
        return "account name is not in Unicode NFC form"
    if name.startswith(".") or any(ch in "/\\" or unicodedata.category(ch)[0] in "CZ" for ch in name):
        return "invalid account name: no '/', '\\', spaces, control characters or leading '.'"
    return None


_DURATION_UNITS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"(?:\d+[wdhms])+")


def parse_duration(text: str) -> int | None:
    """Seconds of a duration such as "7d", "12h", "1d12h", "90m", "30s" or "0"; None if malformed."""
    text = text.strip().lower()
    if text.isdigit():
        return int(text)
    if not _DURATION.fullmatch(text):
        return None
    return sum(int(n) * _DURATION_UNITS[unit] for n, unit in re.findall(r"(\d+)([wdhms])", text))


def format_duration(seconds: int) -> str:
    """The shortest form `parse_duration` reads back as `seconds` ("7d", "1d12h", "0")."""
    if not seconds:
        return "0"
    parts = []
    for unit, size in _DURATION_UNITS.items():
        if unit != "w" and seconds >= size:  # "7d" stays "7d", not "1w"
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts)


def _duration(t: _Table, name: str) -> int:
    """A duration key: a string like "7d" or a number of seconds; absent: 0."""
    value = t._get(name, (str, int), 'a duration such as "7d", "12h" or "30m", or seconds', 0, False)
    if isinstance(value, int):
        if value < 0:
            raise t.error(name, f"expected a duration of 0 or more, got {value}")
        return value
    seconds = parse_duration(value)
    if seconds is None:
        raise t.error(name, f'expected a duration such as "7d", "12h" or "30m" (units w d h m s), got {value!r}')
    return seconds


def _no_controls(t: _Table, name: str, value: str) -> str:
    # Names end up in message headers and web pages: a newline would inject a header.
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise t.error(name, "expected text without control characters (newlines, tabs)")
    return value


def parse_dynamic(path: Path, data: dict[str, Any], transports: Collection[str] | None = None) -> DynamicConfig:
    """Validates already-read dynamic config data (also used before an atomic rewrite), one
    loader per section; an address belongs to one account or alias. `transports`: the names
    of mailsrv.toml's transports, which accounts' routes must use (None: not checked)."""
    root = _Table(path, "", data)
    domains = _load_domains(root)
    book = _AddressBook(path, domains)
    accounts = _load_accounts(root, book, transports)
    aliases = _load_aliases(root, book)
    root.finish()
    return DynamicConfig(domains=domains, accounts=accounts, aliases=aliases)


def _load_domains(root: _Table) -> dict[str, DomainConfig]:
    domains: dict[str, DomainConfig] = {}
    dt = root.table("domains")
    if dt is not None:
        for name in list(dt.data):
            t = dt.table(name)
            assert t is not None
            domain = _domain(dt, name, name)
            if domain.ascii in domains:
                raise dt.error(name, f"domain {domain.ascii} is configured twice")
            sep = t.get_str("localpart_catchall_separator", "+")
            if sep and (len(sep) != 1 or sep not in _SEPARATORS):
                raise t.error(
                    "localpart_catchall_separator", f"expected one of {_SEPARATORS} or an empty string, got {sep!r}"
                )
            # dkim_selectors: every key signs (ed25519 and RSA, RFC 8463 §3); dkim_selector: one.
            selector = t.get_str("dkim_selector", None)
            if selector is not None and not _DNS_LABELS.fullmatch(selector):
                raise t.error("dkim_selector", f"expected a DNS label such as 'mail2026', got {selector!r}")
            selectors = t.str_list("dkim_selectors")
            for i, sel in enumerate(selectors):
                if not _DNS_LABELS.fullmatch(sel):
                    raise t.error("dkim_selectors", f"expected DNS labels such as 'mail2026', got {sel!r} at [{i}]")
            if selector is not None and selectors:
                raise t.error("dkim_selector", "give dkim_selectors or dkim_selector, not both")
            if selector is not None:
                selectors = (selector,)
            domains[domain.ascii] = DomainConfig(
                name=domain,
                localpart_catchall_separator=sep or None,
                dkim_selectors=selectors,
                description=_no_controls(t, "description", t.get_str("description", "")),
                dmarc_reports=_report_address(t, "dmarc_reports"),
                tlsrpt_reports=_report_address(t, "tlsrpt_reports"),
                mta_sts_mode=_mta_sts_mode(t),
                mta_sts_max_age=_mta_sts_max_age(t),
            )
            t.finish()
    return domains


REPORT_LOCALPART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
REPORT_LOCALPART_PROBLEM = "expected a localpart of letters, digits and . _ + - only"
MTA_STS_MODES = ("none", "testing", "enforce", "off")
# RFC 8461 §3.2: max_age is at most 31557600 seconds (about a year).
MTA_STS_MAX_AGE_LIMIT = 31557600


def _report_address(t: _Table, name: str) -> Address | None:
    """A reporting address (rua=mailto:); whether it can be delivered is ops.domains' question
    (with LDAP, the directory decides)."""
    text = t.get_str(name, None)
    if text is None or text == "":
        return None
    a = _address(t.file, t.key(name), text)
    if not REPORT_LOCALPART.fullmatch(a.localpart.value):
        # It goes into DNS TXT records as a mailto: URI (RFC 6068) in a list that ',', ';' and '!'
        # delimit (RFC 7489 §6.4, RFC 8460 §3): plain ASCII needs no escaping anywhere.
        raise t.error(name, f"{REPORT_LOCALPART_PROBLEM}, got {text!r}")
    return a


def _mta_sts_mode(t: _Table) -> str | None:
    mode: str | None = t.get_str("mta_sts_mode", None)
    if mode is not None and mode not in MTA_STS_MODES:
        raise t.error("mta_sts_mode", f"expected none, testing, enforce or off, got {mode!r}")
    return mode


def _mta_sts_max_age(t: _Table) -> int | None:
    if "mta_sts_max_age" not in t.data:
        return None
    seconds = _duration(t, "mta_sts_max_age")
    if not 1 <= seconds <= MTA_STS_MAX_AGE_LIMIT:
        raise t.error(
            "mta_sts_max_age", f"expected 1s to {MTA_STS_MAX_AGE_LIMIT} seconds (RFC 8461 §3.2), got {seconds}"
        )
    return seconds


class _AddressBook:
    """The addresses of the configured domains taken so far, for conflict messages."""

    def __init__(self, file: Path, domains: dict[str, DomainConfig]) -> None:
        self.file = file
        self.domains = domains
        self.taken: dict[str, str] = {}  # Address.key() -> what has it

    def claim(self, key_path: str, address: Address, owner: str) -> None:
        k = address.key()
        if k in self.taken:
            raise ConfigError(self.file, key_path, f"address {address} is already used by {self.taken[k]}")
        self.taken[k] = owner

    def local(self, key_path: str, text: str) -> Address:
        """An address of a configured domain."""
        a = _address(self.file, key_path, text)
        if a.domain.ascii not in self.domains:
            raise ConfigError(self.file, key_path, f"domain {a.domain.ascii!r} is not configured in [domains]")
        return a


def _load_accounts(
    root: _Table, book: _AddressBook, transports: Collection[str] | None = None
) -> dict[str, AccountConfig]:
    accounts: dict[str, AccountConfig] = {}
    folded_names: dict[str, str] = {}
    at = root.table("accounts")
    if at is not None:
        for name in list(at.data):
            problem = _account_name_problem(name)
            if problem is not None:
                raise at.error(name, problem)
            # Logins fold case, so "Alice" and "alice" would be one login for two accounts.
            folded = name.casefold()
            if folded in folded_names:
                raise at.error(name, f"account name differs only in case from account {folded_names[folded]!r}")
            folded_names[folded] = name
            t = at.table(name)
            assert t is not None
            domain = _domain(t, "domain", t.get_str("domain", required=True))
            if domain.ascii not in book.domains:
                raise t.error("domain", f"domain {domain.ascii!r} is not configured in [domains]")
            addr_texts = t.str_list("addresses")
            if not addr_texts:
                raise t.error("addresses", "expected at least one address")
            addresses = []
            for i, text in enumerate(addr_texts):
                key_path = f"{t.key('addresses')}[{i}]"
                a = book.local(key_path, text)
                book.claim(key_path, a, f"account {name!r}")
                addresses.append(a)
            accounts[name] = AccountConfig(
                name=name,
                domain=domain,
                addresses=tuple(addresses),
                full_name=_no_controls(t, "full_name", t.get_str("full_name", "")),
                quota=t.get_int("quota", None),
                disabled=t.get_bool("disabled", False),
                retired_keep=_duration(t, "retired_keep"),
                fromid_login_addresses=_fromid_addresses(t, book, tuple(addresses)),
                routes=load_account_routes(t, transports),
            )
            t.finish()
    return accounts


def _fromid_addresses(t: _Table, book: _AddressBook, addresses: tuple[Address, ...]) -> tuple[Address, ...]:
    """`fromid_login_addresses`: each one of the account's own addresses."""
    keys = {a.key() for a in addresses}
    out: list[Address] = []
    for i, text in enumerate(t.str_list("fromid_login_addresses")):
        a = book.local(f"{t.key('fromid_login_addresses')}[{i}]", text)
        if a.key() not in keys:
            raise t.error("fromid_login_addresses", f"{text!r} is not an address of this account")
        out.append(a)
    return tuple(out)


def _load_aliases(root: _Table, book: _AddressBook) -> dict[str, AliasConfig]:
    aliases: dict[str, AliasConfig] = {}
    lt = root.table("aliases")
    if lt is not None:
        for text in list(lt.data):
            t = lt.table(text)
            assert t is not None
            address = book.local(lt.key(text), text)
            book.claim(lt.key(text), address, f"alias {text!r}")
            members: list[Address] = []
            for i, m in enumerate(t.str_list("members")):
                key_path = f"{t.key('members')}[{i}]"
                # Members are local (RFC 5321 §3.9.1 lists exploded here); mail to remote
                # members would need forwarding, which this alias type does not do.
                member = book.local(key_path, m)
                if member.key() == address.key():
                    raise ConfigError(book.file, key_path, "an alias cannot be its own member")
                if any(member.key() == other.key() for other in members):
                    raise ConfigError(book.file, key_path, f"member {member} is listed twice")
                members.append(member)
            aliases[address.key()] = AliasConfig(
                address=address,
                members=tuple(members),
                post_public=t.get_bool("post_public", False),
                list_members=t.get_bool("list_members", False),
                allow_msg_from=t.get_bool("allow_msg_from", False),
            )
            t.finish()
    return aliases


def dump_dynamic(config: DynamicConfig) -> dict[str, Any]:
    """The TOML document for `config` (tomli_w.dumps of it round-trips through parse_dynamic)."""
    out: dict[str, Any] = {"domains": {}, "accounts": {}, "aliases": {}}
    for d in config.domains.values():
        dd: dict[str, Any] = {"localpart_catchall_separator": d.localpart_catchall_separator or ""}
        if d.dkim_selectors:
            dd["dkim_selectors"] = list(d.dkim_selectors)
        if d.description:
            dd["description"] = d.description
        if d.dmarc_reports is not None:
            dd["dmarc_reports"] = d.dmarc_reports.display()
        if d.tlsrpt_reports is not None:
            dd["tlsrpt_reports"] = d.tlsrpt_reports.display()
        if d.mta_sts_mode is not None:
            dd["mta_sts_mode"] = d.mta_sts_mode
        if d.mta_sts_max_age is not None:
            dd["mta_sts_max_age"] = format_duration(d.mta_sts_max_age)
        out["domains"][d.name.ascii] = dd
    for a in config.accounts.values():
        ad: dict[str, Any] = {"domain": a.domain.ascii, "addresses": [a_.display() for a_ in a.addresses]}
        if a.full_name:
            ad["full_name"] = a.full_name
        if a.quota is not None:
            ad["quota"] = a.quota
        if a.disabled:
            ad["disabled"] = True
        if a.retired_keep:
            ad["retired_keep"] = format_duration(a.retired_keep)
        if a.fromid_login_addresses:
            ad["fromid_login_addresses"] = [f.display() for f in a.fromid_login_addresses]
        if a.routes:
            ad["routes"] = [dump_route(r) for r in a.routes]
        out["accounts"][a.name] = ad
    for al in config.aliases.values():
        out["aliases"][al.address.display()] = {
            "members": [m.display() for m in al.members],
            "post_public": al.post_public,
            "list_members": al.list_members,
            "allow_msg_from": al.allow_msg_from,
        }
    return out
