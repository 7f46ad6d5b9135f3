"""Loading and validating the TOML configuration files.

Every problem raises `ConfigError(file, key_path, problem)`: one line that names the file,
the dotted key path (`listeners[2].port`) and what was expected. Unknown keys are errors, so
a typo never silently falls back to a default.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, TypeVar, cast, get_args

from mailsrv.address import Address, AddressError, Domain
from mailsrv.config.types import (
    AccountConfig,
    AliasConfig,
    ConfigError,
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
        return f"{self.path}.{name}" if self.path else name

    def error(self, name: str, problem: str) -> ConfigError:
        return ConfigError(self.file, self.key(name), problem)

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
        if must_exist and not p.exists():
            raise self.error(name, f"file {str(p)!r} does not exist")
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
        raise ConfigError(path, "", f"invalid TOML: {e}") from None
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
    """Reads and validates mailsrv.toml. Raises ConfigError."""
    path = Path(path).absolute()
    base = path.parent
    root = _Table(path, "", _read_toml(path))
    hostname = _domain(root, "hostname", root.get_str("hostname", required=True))
    data_dir = root.path_value("data_dir", base, required=True)
    assert data_dir is not None
    localserve = root.get_bool("localserve", False)

    tls: list[TLSKeyPair] = []
    for t in root.table_list("tls"):
        cert = t.path_value("cert_file", base, required=True, must_exist=True)
        key = t.path_value("key_file", base, required=True, must_exist=True)
        assert cert is not None and key is not None
        hostnames = t.str_list("hostnames")
        for i, h in enumerate(hostnames):
            _domain(t, f"hostnames[{i}]", h)
        t.finish()
        tls.append(TLSKeyPair(cert, key, hostnames))

    listeners: list[ListenerConfig] = []
    names: set[str] = set()
    for t in root.table_list("listeners"):
        protocol: Protocol = t.choice("protocol", Protocol, required=True)
        tls_mode: TLSMode = t.choice("tls", TLSMode, default="none")
        name = t.get_str("name", default=f"{protocol}-{len(listeners)}")
        if name in names:
            raise t.error("name", f"duplicate listener name {name!r}")
        names.add(name)
        port = t.get_int("port", required=True)
        if not 0 <= port <= 65535:
            raise t.error("port", f"expected a port number 0-65535, got {port}")
        address = t.get_str("address", default="0.0.0.0")
        if tls_mode != "none" and not tls:
            raise t.error("tls", f"listener uses TLS ({tls_mode}) but no [[tls]] key pair is configured")
        t.finish()
        listeners.append(ListenerConfig(name, protocol, address, port, tls_mode))

    ldap = _load_ldap(root, base)

    web_t = root.table("web")
    web = WebConfig()
    if web_t is not None:
        web = WebConfig(
            webmail_path=web_t.get_str("webmail_path", web.webmail_path),
            account_path=web_t.get_str("account_path", web.account_path),
            admin_path=web_t.get_str("admin_path", web.admin_path),
            webapi_path=web_t.get_str("webapi_path", web.webapi_path),
        )
        web_t.finish()

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
            login_failures_per_ip=lim_t.get_int("login_failures_per_ip", limits.login_failures_per_ip, minimum=1),
            login_failures_per_account=lim_t.get_int(
                "login_failures_per_account", limits.login_failures_per_account, minimum=1
            ),
            login_failure_window=lim_t.get_int("login_failure_window", limits.login_failure_window, minimum=1),
        )
        lim_t.finish()

    imap = IMAPConfig()
    imap_t = root.table("imap")
    if imap_t is not None:
        imap = IMAPConfig(
            login_disabled_without_tls=imap_t.get_bool("login_disabled_without_tls", imap.login_disabled_without_tls),
            idle_timeout=imap_t.get_int("idle_timeout", imap.idle_timeout, minimum=1),
            unauthenticated_timeout=imap_t.get_int("unauthenticated_timeout", imap.unauthenticated_timeout, minimum=1),
        )
        imap_t.finish()

    smtp = SMTPConfig()
    smtp_t = root.table("smtp")
    if smtp_t is not None:
        remote_port = smtp_t.get_int("remote_port", smtp.remote_port, minimum=1)
        if remote_port > 65535:
            raise smtp_t.error("remote_port", f"expected a port number, got {remote_port}")
        smtp = SMTPConfig(
            remote_port=remote_port,
            command_timeout=smtp_t.get_int("command_timeout", smtp.command_timeout, minimum=1),
        )
        smtp_t.finish()

    root.finish()
    return StaticConfig(
        source=path,
        hostname=hostname,
        data_dir=data_dir,
        listeners=tuple(listeners),
        tls=tuple(tls),
        ldap=ldap,
        web=web,
        limits=limits,
        imap=imap,
        smtp=smtp,
        localserve=localserve,
    )


def _load_ldap(root: _Table, base: Path) -> LDAPConfig | None:
    t = root.table("ldap")
    if t is None:
        return None
    uris = t.str_list("uris")
    if not uris:
        raise t.error("uris", "expected at least one ldap:// or ldaps:// URI")
    for i, uri in enumerate(uris):
        if not uri.startswith(("ldap://", "ldaps://")):
            raise t.error(f"uris[{i}]", f"expected an ldap:// or ldaps:// URI, got {uri!r}")
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
        timeout=t.get_float("timeout", defaults.timeout),
        cache_seconds=t.get_int("cache_seconds", defaults.cache_seconds),
    )
    if "{address}" not in config.user_filter and "{username}" not in config.user_filter:
        raise t.error("user_filter", "expected a filter with an {address} or {username} placeholder")
    t.finish()
    return config


def load_dynamic(path: Path, static: StaticConfig | None = None) -> DynamicConfig:
    """Reads and validates the dynamic config. A missing file is an empty config."""
    path = Path(path)
    if not path.exists():
        return DynamicConfig()
    return parse_dynamic(path, _read_toml(path))


def parse_dynamic(path: Path, data: dict[str, Any]) -> DynamicConfig:
    """Validates already-read dynamic config data (also used before an atomic rewrite)."""
    root = _Table(path, "", data)
    domains: dict[str, DomainConfig] = {}
    dt = root.table("domains")
    if dt is not None:
        for name in list(dt.data):
            t = dt.table(name)
            assert t is not None
            domain = _domain(dt, name, name)
            sep = t.get_str("localpart_catchall_separator", "+")
            if sep is not None and len(sep) > 1:
                raise t.error("localpart_catchall_separator", "expected one character or an empty string")
            domains[domain.ascii] = DomainConfig(
                name=domain,
                localpart_catchall_separator=sep or None,
                dkim_selector=t.get_str("dkim_selector", None),
                description=t.get_str("description", ""),
            )
            t.finish()

    taken: dict[str, str] = {}  # Address.key() -> what has it, for conflict messages

    def claim(key_path: str, address: Address, owner: str) -> None:
        k = address.key()
        if k in taken:
            raise ConfigError(path, key_path, f"address {address} is already used by {taken[k]}")
        taken[k] = owner

    accounts: dict[str, AccountConfig] = {}
    at = root.table("accounts")
    if at is not None:
        for name in list(at.data):
            t = at.table(name)
            assert t is not None
            if not name or "/" in name or name.startswith("."):
                raise at.error(name, "invalid account name (no '/', no leading '.')")
            domain = _domain(t, "domain", t.get_str("domain", required=True))
            if domain.ascii not in domains:
                raise t.error("domain", f"domain {domain.ascii!r} is not configured in [domains]")
            addr_texts = t.str_list("addresses")
            if not addr_texts:
                raise t.error("addresses", "expected at least one address")
            addresses = []
            for i, text in enumerate(addr_texts):
                key_path = f"{t.key('addresses')}[{i}]"
                a = _address(path, key_path, text)
                if a.domain.ascii not in domains:
                    raise ConfigError(path, key_path, f"domain {a.domain.ascii!r} is not configured in [domains]")
                claim(key_path, a, f"account {name!r}")
                addresses.append(a)
            quota = t.get_int("quota", None)
            accounts[name] = AccountConfig(
                name=name,
                domain=domain,
                addresses=tuple(addresses),
                full_name=t.get_str("full_name", ""),
                quota=quota,
                disabled=t.get_bool("disabled", False),
            )
            t.finish()

    aliases: dict[str, AliasConfig] = {}
    lt = root.table("aliases")
    if lt is not None:
        for text in list(lt.data):
            t = lt.table(text)
            assert t is not None
            address = _address(path, lt.key(text), text)
            if address.domain.ascii not in domains:
                raise lt.error(text, f"domain {address.domain.ascii!r} is not configured in [domains]")
            claim(lt.key(text), address, f"alias {text!r}")
            members = []
            for i, m in enumerate(t.str_list("members")):
                members.append(_address(path, f"{t.key('members')}[{i}]", m))
            aliases[address.key()] = AliasConfig(
                address=address,
                members=tuple(members),
                post_public=t.get_bool("post_public", False),
                list_members=t.get_bool("list_members", False),
                allow_msg_from=t.get_bool("allow_msg_from", False),
            )
            t.finish()
    root.finish()
    return DynamicConfig(domains=domains, accounts=accounts, aliases=aliases)


def dump_dynamic(config: DynamicConfig) -> dict[str, Any]:
    """The TOML document for `config` (tomli_w.dumps of it round-trips through parse_dynamic)."""
    out: dict[str, Any] = {"domains": {}, "accounts": {}, "aliases": {}}
    for d in config.domains.values():
        dd: dict[str, Any] = {"localpart_catchall_separator": d.localpart_catchall_separator or ""}
        if d.dkim_selector:
            dd["dkim_selector"] = d.dkim_selector
        if d.description:
            dd["description"] = d.description
        out["domains"][d.name.ascii] = dd
    for a in config.accounts.values():
        ad: dict[str, Any] = {"domain": a.domain.ascii, "addresses": [a_.display() for a_ in a.addresses]}
        if a.full_name:
            ad["full_name"] = a.full_name
        if a.quota is not None:
            ad["quota"] = a.quota
        if a.disabled:
            ad["disabled"] = True
        out["accounts"][a.name] = ad
    for al in config.aliases.values():
        out["aliases"][al.address.display()] = {
            "members": [m.display() for m in al.members],
            "post_public": al.post_public,
            "list_members": al.list_members,
            "allow_msg_from": al.allow_msg_from,
        }
    return out
