"""Inbound mail authentication in one call: SPF, DKIM and DMARC for a received message,
and the `Authentication-Results:` header value (RFC 8601) recording them.

The SMTP server calls `MailAuthenticator.evaluate` at its decision point (after DATA,
before answering): a DMARC `reject` disposition is answered 550 5.7.1, `quarantine`
delivers to Junk, and `verified_domains` feeds rulesets and the junk filter.

Invariants:
- All DNS and crypto work runs in one pool thread per message (never on the reactor); a
  message without a DKIM signature whose checks need only cached DNS answers is evaluated
  on the calling thread (no lookup, no crypto: `Resolver.cache_only`).
- SPF results and DMARC policy records are reused while the DNS answers they came from are
  cached (mailsrv/dns/resultcache.py): the same inputs and answers give the same verdicts.
- Every failure of a check is a verdict (temperror/permerror), never an exception to the
  caller; `evaluate` only raises on programming errors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mailsrv.dns.dkim import DKIMVerdict, has_signature, verify_dkim_sync
from mailsrv.dns.dmarc import Disposition, DMARCVerdict, OrganizationalDomains, PolicyCache, evaluate_dmarc_sync
from mailsrv.dns.resolver import Resolver
from mailsrv.dns.spf import SPFCache, SPFVerdict, check_spf_sync
from mailsrv.message.source import MessageSource


@dataclass(frozen=True)
class AuthResults:
    hostname: str  # our authserv-id (RFC 8601 §2.5)
    spf: SPFVerdict  # for MAIL FROM, or for HELO when the reverse-path is null
    spf_identity: str  # "mailfrom" or "helo"
    dkim: tuple[DKIMVerdict, ...]
    dmarc: DMARCVerdict
    verified_domains: tuple[str, ...] = field(default=())  # SPF-passed and DKIM-passed domains
    helo_spf: SPFVerdict | None = None  # RFC 7208 §2.3: the HELO identity, checked too when MAIL FROM is not null

    @property
    def disposition(self) -> Disposition:
        return self.dmarc.disposition

    def header_field(self) -> bytes:
        """The complete `Authentication-Results:` field, CRLF-terminated, to prepend."""
        return b"Authentication-Results: " + self.header_value().encode("utf-8") + b"\r\n"

    def header_value(self) -> str:
        """The field body of `Authentication-Results:` (without the name), folded."""
        parts = [_value(self.hostname)]
        parts.append(f"spf={self.spf.result} smtp.{self.spf_identity}={_value(self.spf.domain or 'unknown')}")
        if self.helo_spf is not None:
            parts.append(f"spf={self.helo_spf.result} smtp.helo={_value(self.helo_spf.domain)}")
        if not self.dkim:
            parts.append("dkim=none")
        for v in self.dkim:
            text = f"dkim={v.result}"
            if v.reason and v.result != "pass":
                text += f" ({_comment(v.reason)})"
            if v.domain:
                text += f" header.d={_value(v.domain)}"
            if v.selector:
                text += f" header.s={_value(v.selector)}"
            if v.algorithm:
                text += f" header.a={_value(v.algorithm)}"
            parts.append(text)
        dmarc = f"dmarc={self.dmarc.result}"
        if self.dmarc.policy is not None:
            dmarc += f" policy.dmarc={self.dmarc.policy}"
        if self.dmarc.from_domain:
            dmarc += f" header.from={_value(self.dmarc.from_domain)}"
        parts.append(dmarc)
        return ";\r\n\t".join(parts)


_TOKEN = re.compile(r"[A-Za-z0-9._@+\-]+")


def _value(text: str) -> str:
    """A value as RFC 2045 token or quoted-string (RFC 8601 §2.2)."""
    if _TOKEN.fullmatch(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _comment(text: str) -> str:
    text = re.sub(r"[()\\\r\n]", " ", text)
    return text[:100]


def _looks_like_domain(helo: str) -> bool:
    # An address literal ("[192.0.2.1]") or a bare word has no SPF record to check.
    return "." in helo and not helo.startswith("[")


class MailAuthenticator:
    """Holds what evaluation needs: the resolver, the public suffix list, our hostname."""

    def __init__(self, resolver: Resolver, hostname: str, cache_size: int = 4096) -> None:
        self.resolver = resolver
        self.hostname = hostname
        self.orgs = OrganizationalDomains()
        # Both keyed by what the peer sends: bounded (resultcache.py).
        self.spf_cache = SPFCache(resolver, cache_size)
        self.dmarc_cache = PolicyCache(resolver, cache_size)

    def evaluate_sync(self, message: bytes | MessageSource, mail_from: str, helo: str, remote_ip: str) -> AuthResults:
        """Blocks; `evaluate` runs it in a pool thread. `mail_from` is the reverse-path
        address ("" for the null path)."""
        header = message.header_block() if isinstance(message, MessageSource) else message
        return self._evaluate(message, header, has_signature(header), mail_from, helo, remote_ip)

    def _evaluate(
        self, message: bytes | MessageSource, header: bytes, signed: bool, mail_from: str, helo: str, remote_ip: str
    ) -> AuthResults:
        """`header` is the message's header block (or all of it); `signed`: it has a
        DKIM-Signature field (without one there is nothing to verify)."""
        identity = "mailfrom" if mail_from else "helo"
        spf = check_spf_sync(self.resolver, remote_ip, mail_from, helo, self.spf_cache)
        helo_spf = None
        if mail_from and _looks_like_domain(helo):
            helo_spf = check_spf_sync(self.resolver, remote_ip, "", helo, self.spf_cache)
        dkim = tuple(verify_dkim_sync(self.resolver, message)) if signed else ()
        dkim_domains = [v.domain for v in dkim if v.result == "pass" and v.domain]
        # RFC 7489 §4.1: SPF's authenticated identifier is the MAIL FROM domain, or the HELO
        # domain when MAIL FROM is null.
        spf_domain = spf.domain if spf.result == "pass" else None
        dmarc = evaluate_dmarc_sync(self.resolver, self.orgs, header, spf_domain, dkim_domains, cache=self.dmarc_cache)
        verified = tuple(dict.fromkeys(([spf_domain] if spf_domain else []) + dkim_domains))
        return AuthResults(self.hostname, spf, identity, dkim, dmarc, verified, helo_spf)

    async def evaluate(self, message: bytes | MessageSource, mail_from: str, helo: str, remote_ip: str) -> AuthResults:
        """In the DNS pool; or at once on the calling thread when the message has no DKIM
        signature (no crypto) and every DNS answer the checks need is cached (no lookup):
        most mail comes from senders seen minutes ago, and a thread round trip per message
        cost more than the checks themselves (~60 us)."""
        header = message.header_block() if isinstance(message, MessageSource) else message
        signed = has_signature(header)
        if not signed:
            missed = [False]
            previous = self.resolver.set_cache_only(missed)
            try:
                results = self._evaluate(message, header, False, mail_from, helo, remote_ip)
            finally:
                self.resolver.set_cache_only(previous)
            if not missed[0]:
                return results
        return await self.resolver.in_thread(self._evaluate, message, header, signed, mail_from, helo, remote_ip)
