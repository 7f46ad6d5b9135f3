"""DKIM for the domains we send for: signing submitted mail with every configured selector
(an ed25519 and an RSA signature, RFC 8463 §3: verifiers without ed25519 use the RSA one),
saying loudly when a domain cannot sign, and creating a new domain's keys.

Invariants:
- Keys live in data/dkim/<domain>/<selector>.pem (mailsrv/dns/dkimkeys.py); the selectors in
  use are the domain's `dkim_selectors`.
- A missing or unusable key, or a local domain without selectors, is logged for every message
  (error / warning) and once at start (`dkim_problems`, from mailsrv/service.py); the message
  still goes out, without that signature, rather than being refused: the log says why.
- Signing and key generation block (RSA): `dkim_sign` runs in the thread pool, never on the
  reactor; `create_domain_dkim` is for callers already in a thread or a CLI.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from mailsrv.dns.dkimkeys import create_domain_keys, key_problems, sign_submission

if TYPE_CHECKING:
    from mailsrv.server import Server

log = Logger()


class DKIMRecord(msgspec.Struct, frozen=True):
    """A TXT record to publish: `name` (`<selector>._domainkey.<domain>`) and its value."""

    selector: str
    name: str
    value: str


def create_domain_dkim(data_dir: Path, domain: str, today: datetime.date | None = None) -> list[DKIMRecord]:
    """An ed25519 and an RSA key for `domain` with selectors named after the month
    (`202612e`, `202612r`); keeps keys that exist. Blocks."""
    base = (today or datetime.date.today()).strftime("%Y%m")
    return [
        DKIMRecord(selector, f"{selector}._domainkey.{domain}", txt)
        for selector, txt in create_domain_keys(data_dir, domain, base)
    ]


async def dkim_sign(server: Server, domain: str, message: bytes) -> bytes:
    """The DKIM-Signature fields for `message` (as it will leave) from `domain`: one per
    configured selector that can sign. Logs, per message, every selector that cannot."""
    config = server.dynamic.current.domains.get(domain)
    if config is None:
        return b""  # not ours (a directory login address): nothing to sign with
    if not config.dkim_selectors:
        if not server.config.localserve:
            log.warn(
                "DKIM: message from {domain} leaves unsigned: the domain has no dkim_selectors"
                " (receivers applying its DMARC policy may reject it)",
                domain=domain,
            )
        return b""
    reactor: Any = server.reactor
    signatures, problems = await deferToThreadPool(
        reactor,
        reactor.getThreadPool(),
        sign_submission,
        server.config.data_dir,
        domain,
        config.dkim_selectors,
        message,
    )
    for problem in problems:
        what = "without this signature" if signatures else "UNSIGNED"
        log.error("DKIM: message from {domain} leaves {what}: {problem}", domain=domain, what=what, problem=problem)
    return signatures


def dkim_problems(server: Server) -> list[str]:
    """Every local domain that cannot sign its mail, with why (for a loud log line at start)."""
    out = []
    for name, domain in sorted(server.dynamic.current.domains.items()):
        if not domain.dkim_selectors:
            out.append(f"{name}: no dkim_selectors, mail leaves unsigned")
            continue
        out += [f"{name}: {p}" for p in key_problems(server.config.data_dir, name, domain.dkim_selectors)]
    return out
