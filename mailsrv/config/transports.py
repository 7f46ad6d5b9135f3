"""Named transports and routes (`[transports.NAME]`, `[[routes]]` in mailsrv.toml).

A transport says how the queue delivers a recipient: `direct` (the recipient domain's MX
hosts, as always; optionally from a chosen source address) or through a smarthost:
`submissions` (implicit TLS, RFC 8314, port 465), `submission` (STARTTLS required, port 587)
or `smtp` (port 25 or any, STARTTLS opportunistic or required), with an optional login.
Routes are rules tried in order; the first whose every given condition holds names the
transport; none matching means the built-in `direct`. mailsrv/queue/routes.py evaluates them.

Invariants (checked at load, errors name the section and key):
- `direct` is built in and cannot be redefined; route targets must be defined transports.
- A login (`username`) needs a password (from `password_file`, mode 0600 or stricter, or
  `password` in the file, which is warned about) and TLS: an `smtp` transport with a login
  must set `tls = "required"`, so a password never crosses the network in the clear.
- TLS to a smarthost is verified (chain and name: `tls_name`, default `host`) unless
  `tls_verify = false`; opportunistic STARTTLS is never verified (RFC 3207 §4.1).
"""

from __future__ import annotations

import ipaddress
import re
import stat
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mailsrv.address import AddressError, Domain

if TYPE_CHECKING:
    from mailsrv.config.load import _Table

TransportKind = Literal["direct", "submissions", "submission", "smtp"]
SMTPTLS = Literal["opportunistic", "required"]
DIRECT = "direct"  # the built-in transport: MX delivery from the default address
ROUTES = "routes"  # not a transport: `mailsrv queue transport routes` hands recipients back to the routes
DEFAULT_PORTS = {"submissions": 465, "submission": 587, "smtp": 25}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


@dataclass(frozen=True)
class TransportConfig:
    name: str
    kind: TransportKind
    host: str = ""  # smarthost: a host name (A-label) or an IP literal; "" for direct
    port: int = 0
    tls: SMTPTLS = "required"  # `smtp` only: opportunistic or required STARTTLS; others always TLS
    tls_verify: bool = True  # check the smarthost's certificate chain and name
    tls_name: str = ""  # the name to verify instead of `host` (and to send as SNI)
    tls_ca_file: Path | None = None  # None: [smtp] tls_ca_file, else the system's store
    username: str | None = None
    password: str = field(default="", repr=False)
    source_ip: str | None = None  # `direct` only: the local address to connect from

    @property
    def smarthost(self) -> bool:
        return self.kind != "direct"


@dataclass(frozen=True)
class RouteConfig:
    """Every non-empty condition must hold (empty sets match anything)."""

    transport: str
    recipient_domains: frozenset[str] = frozenset()  # A-labels and U-labels, lower case
    sender_domains: frozenset[str] = frozenset()
    accounts: frozenset[str] = frozenset()  # submitting accounts ("" never matches: system mail)
    minimum_attempts: int = 0  # attempts already made to the recipient


@dataclass(frozen=True)
class TransportsConfig:
    transports: dict[str, TransportConfig] = field(default_factory=lambda: {DIRECT: TransportConfig(DIRECT, "direct")})
    routes: tuple[RouteConfig, ...] = ()
    warnings: tuple[str, ...] = ()  # logged at start (a password written in the config file)

    def names(self) -> tuple[str, ...]:
        return tuple(self.transports)


def load_transports(root: _Table, base: Path) -> TransportsConfig:
    """`[transports.NAME]` and `[[routes]]` of mailsrv.toml."""
    transports = {DIRECT: TransportConfig(DIRECT, "direct")}
    warnings: list[str] = []
    section = root.table("transports")
    if section is not None:
        for name in section.data:
            t = section.table(name)
            assert t is not None
            if name == DIRECT:
                raise section.error(name, "direct is the built-in transport (MX delivery); choose another name")
            if name == ROUTES:
                raise section.error(name, "routes is reserved (mailsrv queue transport routes); choose another name")
            if not _NAME.fullmatch(name):
                raise section.error(name, "expected a name of letters, digits, '.', '_' and '-' (at most 63)")
            transports[name] = _transport(t, name, base, warnings)
        section.finish()
    routes = tuple(_route(t, transports) for t in root.table_list("routes"))
    return TransportsConfig(transports, routes, tuple(warnings))


def _transport(t: _Table, name: str, base: Path, warnings: list[str]) -> TransportConfig:
    kind: TransportKind = t.choice("kind", TransportKind, required=True)
    if kind == "direct":
        source_ip = t.get_str("source_ip", None)
        if source_ip is not None:
            try:
                source_ip = str(ipaddress.ip_address(source_ip))
            except ValueError:
                raise t.error("source_ip", f"expected an IP address of this machine, got {source_ip!r}") from None
        t.finish()  # host, port, login and TLS keys are unknown here: MX delivery has its own
        return TransportConfig(name, kind, source_ip=source_ip)
    host = _host(t, t.get_str("host", required=True))
    port = t.get_port("port", DEFAULT_PORTS[kind])
    if port == 0:
        raise t.error("port", "expected a port number 1-65535, got 0")
    tls: SMTPTLS = "required"
    if kind == "smtp":
        tls = t.choice("tls", SMTPTLS, default="opportunistic")
    verify_default = tls == "required"
    tls_verify = t.get_bool("tls_verify", verify_default)
    if tls_verify and tls != "required":
        raise t.error("tls_verify", 'opportunistic STARTTLS is never verified: set tls = "required" or remove it')
    tls_name = t.get_str("tls_name", "")
    if tls_name:
        tls_name = _host(t, tls_name, "tls_name")
    tls_ca_file = t.path_value("tls_ca_file", base, must_exist=True)
    username = t.get_str("username", None)
    password = _password(t, base, warnings)
    if username is not None:
        if not username:
            raise t.error("username", "expected a non-empty user name")
        if password is None:
            raise t.error("username", "a login needs password_file (or password)")
        if tls != "required":
            raise t.error("username", 'a login needs TLS: set tls = "required" (no password in the clear)')
    elif password is not None:
        raise t.error("password_file" if "password_file" in t.data else "password", "a password needs a username")
    t.finish()
    return TransportConfig(
        name,
        kind,
        host=host,
        port=port,
        tls=tls,
        tls_verify=tls_verify,
        tls_name=tls_name,
        tls_ca_file=tls_ca_file,
        username=username,
        password=password or "",
    )


def _host(t: _Table, text: str, key: str = "host") -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    try:
        return Domain.parse(text).ascii
    except AddressError as e:
        raise t.error(key, f"expected a host name or IP address: {e}") from None


def _password(t: _Table, base: Path, warnings: list[str]) -> str | None:
    inline = t.get_str("password", None)
    path = t.path_value("password_file", base, must_exist=True)
    if inline is not None and path is not None:
        raise t.error("password", "give password_file or password, not both")
    if inline is not None:
        warnings.append(f"{t.key('password')}: a password in the configuration file; prefer password_file (0600)")
        return str(inline)
    if path is None:
        return None
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise t.error("password_file", f"{str(path)!r} is readable by others (mode {mode & 0o777:o}): chmod 600 it")
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or not lines[0]:
        raise t.error("password_file", f"{str(path)!r}: expected the password on its first line")
    return lines[0]


def _route(t: _Table, transports: Collection[str] | None, per_account: bool = False) -> RouteConfig:
    transport = t.get_str("transport", required=True)
    if transports is not None and transport not in transports:
        raise t.error("transport", f"expected a transport of [transports] in mailsrv.toml or direct, got {transport!r}")
    route = RouteConfig(
        transport=transport,
        recipient_domains=_domains(t, "recipient_domains"),
        sender_domains=_domains(t, "sender_domains"),
        accounts=frozenset() if per_account else frozenset(t.str_list("accounts")),
        minimum_attempts=t.get_int("minimum_attempts", 0, minimum=0),
    )
    t.finish()
    return route


def load_account_routes(t: _Table, transports: Collection[str] | None) -> tuple[RouteConfig, ...]:
    """`[[accounts.NAME.routes]]` of dynamic.toml: the account's own routes, tried before the
    global ones; no `accounts` key. `transports`: the configured names (None: not checked here,
    e.g. a tool without the static config; delivery then defers an unknown one)."""
    return tuple(_route(rt, transports, per_account=True) for rt in t.table_list("routes"))


def dump_route(route: RouteConfig) -> dict[str, Any]:
    """A route as dynamic.toml writes it (domains as A-labels, which parse back to the same)."""
    out: dict[str, Any] = {}
    for key, domains in (("recipient_domains", route.recipient_domains), ("sender_domains", route.sender_domains)):
        if domains:
            out[key] = sorted(d for d in domains if d.isascii())
    if route.minimum_attempts:
        out["minimum_attempts"] = route.minimum_attempts
    out["transport"] = route.transport
    return out


def _domains(t: _Table, key: str) -> frozenset[str]:
    """A-labels and U-labels, lower case: a sender's domain is matched as it was written."""
    forms: set[str] = set()
    for i, text in enumerate(t.str_list(key)):
        try:
            domain = Domain.parse(text)
        except AddressError as e:
            raise t.error(key, str(e), index=i) from None
        forms.update((domain.ascii, domain.unicode.lower()))
    return frozenset(forms)
