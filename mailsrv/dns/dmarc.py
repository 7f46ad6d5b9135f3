"""DMARC (RFC 7489): the policy record, identifier alignment and the disposition.

Invariants:
- The RFC5322.From domain is the single domain of the single From header field; anything
  else (no From, several, several addresses, no domain) is `permerror` (RFC 7489 §6.6.1).
- The organisational domain comes from the public suffix list (RFC 7489 §3.2), loaded once
  per `OrganizationalDomains` object (the Server holds one; no module globals).
- Policy discovery (§6.6.3): `_dmarc.<from-domain>`, then `_dmarc.<organisational domain>`;
  the first TXT record starting "v=DMARC1" counts, several such records mean no policy.
- Disposition on failure: `p` (or `sp` when the record was found at the organisational
  domain for a subdomain), applied to `pct` percent of failing mail; the rest is treated as
  the next less strict policy (§6.6.4).
- With a `PolicyCache`, the record found for a From: domain (or that there is none) is reused
  while the DNS answers it came from are cached (mailsrv/dns/resultcache.py); a temporary
  failure is never stored. Organisational domains and From: field values are memoised too,
  bounded in number and size.
"""

from __future__ import annotations

import email.utils
import functools
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from publicsuffixlist import PublicSuffixList

from mailsrv.dns.resolver import DNSNotFound, DNSTemporaryError, Resolver, Seen
from mailsrv.dns.resultcache import ResultCache
from mailsrv.message.parse import blank_line

DMARCResult = Literal["none", "pass", "fail", "temperror", "permerror"]
Disposition = Literal["none", "quarantine", "reject"]
Alignment = Literal["r", "s"]
_POLICIES = ("none", "quarantine", "reject")


class OrganizationalDomains:
    """The public suffix list, loaded once (it takes tens of milliseconds)."""

    def __init__(self) -> None:
        self._psl = PublicSuffixList()
        # The list does not change: answers are memoised (a few thousand domains at most).
        self.of = functools.lru_cache(maxsize=4096)(self._of)

    def _of(self, domain: str) -> str:
        """The organisational domain of `domain` (RFC 7489 §3.2): the registrable domain, or
        the domain itself when it is a public suffix or unknown."""
        domain = domain.rstrip(".").lower()
        org = self._psl.privatesuffix(domain)
        return str(org) if org else domain


@dataclass(frozen=True)
class DMARCRecord:
    policy: Disposition
    subdomain_policy: Disposition
    adkim: Alignment = "r"
    aspf: Alignment = "r"
    pct: int = 100


def parse_record(text: str) -> DMARCRecord | None:
    """A DMARC record, or None when it is not one (no leading v=DMARC1 or no valid p=)."""
    tags: dict[str, str] = {}
    for i, part in enumerate(text.split(";")):
        name, eq, value = part.partition("=")
        name, value = name.strip().lower(), value.strip()
        if i == 0:
            if name != "v" or value != "DMARC1":
                return None
            continue
        if eq and name and name not in tags:
            tags[name] = value
    policy = tags.get("p", "").lower()
    if policy not in _POLICIES:
        # §6.6.3: a record with an invalid or missing p= but a valid rua is treated as p=none;
        # without p= at all we also use none rather than ignoring the record.
        policy = "none"
    sub = tags.get("sp", policy).lower()
    if sub not in _POLICIES:
        sub = policy
    adkim = "s" if tags.get("adkim", "r").lower() == "s" else "r"
    aspf = "s" if tags.get("aspf", "r").lower() == "s" else "r"
    try:
        pct = max(0, min(100, int(tags.get("pct", "100"))))
    except ValueError:
        pct = 100
    return DMARCRecord(policy, sub, adkim, aspf, pct)  # type: ignore[arg-type]


@dataclass(frozen=True)
class DMARCVerdict:
    result: DMARCResult
    from_domain: str
    disposition: Disposition = "none"
    policy: Disposition | None = None  # the published policy that applied, if any
    reason: str = ""


# The end of a field: a line break not followed by folding white space.
_FIELD_END = re.compile(rb"\r?\n(?![ \t])")
_UNFOLD = re.compile(rb"\r?\n[ \t]")
# From: values up to this long have their domain memoised.
_MEMO_FROM = 256


def from_domain(message: bytes) -> str | None:
    """The domain of the one address of the one From header field, or None."""
    blank = blank_line(message, 0, len(message))
    end = len(message) if blank is None else blank[0]
    # A field starts on a line of its own: folded lines start with white space (RFC 5322 §2.2.3).
    head = message[:end].lower()  # ASCII case only, as the field name's (offsets unchanged)
    if head.startswith(b"from:"):
        start = 5
    else:
        start = head.find(b"\nfrom:") + 6
        if start < 6:
            return None
    if head.find(b"\nfrom:", start - 5) >= 0:
        return None  # a second From field
    stop = _FIELD_END.search(message, start, end)
    value = message[start : end if stop is None else stop.start()]
    if len(value) > _MEMO_FROM:
        return _address_domain(value)
    return _memo_address_domain(value)


def _address_domain(value: bytes) -> str | None:
    """The domain of the one address in a From: field value (folded), or None."""
    text = _UNFOLD.sub(b" ", value).decode("utf-8", "replace")
    addresses = [a for _, a in email.utils.getaddresses([text]) if a]
    if len(addresses) != 1 or "@" not in addresses[0]:
        return None
    domain = addresses[0].rpartition("@")[2].strip().rstrip(".").lower()
    if not domain:
        return None
    try:
        return domain.encode("idna").decode("ascii") if not domain.isascii() else domain
    except UnicodeError:
        return None


_memo_address_domain = functools.lru_cache(maxsize=1024)(_address_domain)


def aligned(a: str, b: str, mode: Alignment, orgs: OrganizationalDomains) -> bool:
    """Identifier alignment (RFC 7489 §3.1): strict needs equal domains, relaxed equal
    organisational domains."""
    a, b = a.lower().rstrip("."), b.lower().rstrip(".")
    if a == b:
        return True
    return mode == "r" and orgs.of(a) == orgs.of(b)


# From: domain -> (record, found at the organisational domain).
PolicyCache = ResultCache[str, tuple[DMARCRecord | None, bool]]


def _find_record(
    resolver: Resolver, domain: str, orgs: OrganizationalDomains, seen: Seen | None = None
) -> tuple[DMARCRecord | None, bool]:
    """(record, found at the organisational domain instead of `domain`)."""
    candidates = [domain]
    org = orgs.of(domain)
    if org != domain:
        candidates.append(org)
    for i, name in enumerate(candidates):
        try:
            txts = resolver.txt_sync(f"_dmarc.{name}", seen)
        except DNSNotFound:
            continue
        records = [r for r in (parse_record(t.decode("utf-8", "replace")) for t in txts) if r is not None]
        if len(records) == 1:
            return records[0], i > 0
        # §6.6.3: zero or several DMARC records at a name: go on to the organisational domain.
    return None, False


def evaluate_dmarc_sync(
    resolver: Resolver,
    orgs: OrganizationalDomains,
    message: bytes,
    spf_pass_domain: str | None,
    dkim_pass_domains: Sequence[str],
    sample: Callable[[], float] = random.random,
    cache: PolicyCache | None = None,
) -> DMARCVerdict:
    """The DMARC verdict given the domains that passed SPF (MAIL FROM) and DKIM (d=).
    Blocks (DNS); call from a thread. `cache` must belong to `resolver`."""
    domain = from_domain(message)
    if domain is None:
        return DMARCVerdict("permerror", "", reason="no single From address with a domain")
    found = cache.get(domain) if cache is not None else None
    if found is None:
        seen = Seen()
        generation = resolver.generation
        try:
            found = _find_record(resolver, domain, orgs, seen)
        except DNSTemporaryError as e:
            return DMARCVerdict("temperror", domain, reason=str(e))
        if cache is not None:
            cache.put(domain, found, seen, generation)
    record, at_org = found
    if record is None:
        return DMARCVerdict("none", domain)
    spf_ok = spf_pass_domain is not None and aligned(spf_pass_domain, domain, record.aspf, orgs)
    dkim_ok = any(aligned(d, domain, record.adkim, orgs) for d in dkim_pass_domains)
    policy = record.subdomain_policy if at_org else record.policy
    if spf_ok or dkim_ok:
        return DMARCVerdict("pass", domain, "none", policy)
    disposition: Disposition = policy
    if record.pct < 100 and sample() * 100 >= record.pct:
        # §6.6.4: outside the sampled percentage, apply the next less strict policy.
        disposition = "quarantine" if policy == "reject" else "none"
    return DMARCVerdict("fail", domain, disposition, policy, "no aligned SPF or DKIM pass")
