"""What the admin interface shows about the server itself: the listeners and the TLS
certificates (names, validity), the static configuration as loaded with secrets hidden, the
last warnings and errors logged, and counts of domains, accounts, aliases and queued, held and
retired messages.

Invariants:
- Nothing secret leaves: configuration values whose key names a password, secret, token or
  private key are replaced by "(hidden)" (file *paths* stay: they say where a secret is, not
  what it is); certificates are described, their private keys are never read.
- Certificate files are read in a thread (they are small, but it is disk I/O).
"""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
from cryptography import x509

from mailsrv.ops.dnscheck import certificate_names
from mailsrv.ops.errors import InvalidInput
from mailsrv.ops.operation import Operation

if TYPE_CHECKING:
    from mailsrv.server import Server

HIDDEN = "(hidden)"
_SECRET_WORDS = ("password", "secret", "token", "private")


class Empty(msgspec.Struct, kw_only=True):
    pass


class ListenerInfo(msgspec.Struct, kw_only=True):
    name: str
    protocol: str
    address: str
    port: int
    tls: str  # none, starttls, implicit


class CertificateInfo(msgspec.Struct, kw_only=True):
    file: str
    names: list[str] = []  # the DNS names the certificate covers
    hostnames: list[str] = []  # the SNI names [[tls]] hostnames assigns it (empty: its own names)
    issuer: str = ""
    self_signed: bool = False
    not_before: float = 0.0  # Unix time
    not_after: float = 0.0
    error: str = ""  # the file could not be read


class Listeners(msgspec.Struct, kw_only=True):
    hostname: str
    listeners: list[ListenerInfo]
    certificates: list[CertificateInfo]


class ConfigView(msgspec.Struct, kw_only=True):
    file: str
    static: dict[str, Any]  # mailsrv.toml as loaded (defaults filled in), secrets hidden
    dynamic_file: str


class RecentErrorsRequest(msgspec.Struct, kw_only=True):
    limit: int = 100


class LogEntry(msgspec.Struct, kw_only=True):
    time: str
    level: str
    namespace: str
    text: str


class Counts(msgspec.Struct, kw_only=True):
    domains: int
    accounts: int
    aliases: int
    queued: int
    held: int
    retired: int


def _describe_certificate(path: Path, hostnames: tuple[str, ...]) -> CertificateInfo:
    try:
        cert = x509.load_pem_x509_certificates(path.read_bytes())[0]
    except (OSError, ValueError, IndexError) as e:
        return CertificateInfo(file=str(path), hostnames=list(hostnames), error=f"cannot read: {e}")
    return CertificateInfo(
        file=str(path),
        names=certificate_names(cert),
        hostnames=list(hostnames),
        issuer=cert.issuer.rfc4514_string(),
        self_signed=cert.issuer == cert.subject,
        not_before=cert.not_valid_before_utc.timestamp(),
        not_after=cert.not_valid_after_utc.timestamp(),
    )


def listeners(server: Server, req: Empty) -> Listeners:
    """The listeners and certificates (in a thread: reads the certificate files)."""
    config = server.config
    return Listeners(
        hostname=config.hostname.ascii,
        listeners=[
            ListenerInfo(name=lc.name, protocol=lc.protocol, address=lc.address, port=lc.port, tls=lc.tls)
            for lc in config.listeners
        ],
        certificates=[_describe_certificate(Path(kp.cert_file), kp.hostnames) for kp in config.tls],
    )


def _is_secret(key: str) -> bool:
    key = key.lower()
    return any(word in key for word in _SECRET_WORDS) and not key.endswith(("_file", "_dir", "_path"))


def _hide_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: (HIDDEN if _is_secret(str(k)) and v not in (None, "") else _hide_secrets(v)) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_hide_secrets(v) for v in value]
    return value


def _builtin(value: Any) -> Any:
    if isinstance(value, Path | datetime.datetime):
        return str(value)
    ascii_form = getattr(value, "ascii", None)  # Domain
    if isinstance(ascii_form, str):
        return ascii_form
    return str(value)


def configuration(server: Server, req: Empty) -> ConfigView:
    config = server.config
    fields = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    static = msgspec.to_builtins(fields, enc_hook=_builtin)
    return ConfigView(file=str(config.source), static=_hide_secrets(static), dynamic_file=str(config.dynamic_file))


def recent_errors(server: Server, req: RecentErrorsRequest) -> list[LogEntry]:
    """The last warnings and errors logged since the daemon started, newest first."""
    if not 1 <= req.limit <= 1000:
        raise InvalidInput("limit: 1 to 1000", "limit")
    return [LogEntry(time=t, level=lv, namespace=ns, text=x) for t, lv, ns, x in server.recent_log.recent(req.limit)]


async def counts(server: Server, req: Empty) -> Counts:
    current = server.dynamic.current
    queue = await server.queue.counts()
    return Counts(
        domains=len(current.domains),
        accounts=len(current.accounts),
        aliases=len(current.aliases),
        queued=queue.queued,
        held=queue.held,
        retired=queue.retired,
    )


OPERATIONS = (
    Operation("server.listeners", listeners, Empty, in_thread=True, summary="listeners and TLS certificates"),
    Operation("server.config", configuration, Empty, summary="the static configuration, secrets hidden"),
    Operation("server.errors", recent_errors, RecentErrorsRequest, summary="recent warnings and errors"),
    Operation("server.counts", counts, Empty, summary="domains, accounts, aliases, queued/held/retired"),
)
