"""SPF (RFC 7208) through pyspf, with every DNS query going to our resolver.

Invariants:
- `check_spf_sync` blocks (pyspf is synchronous) and runs in a pool thread; `check_spf` is
  the reactor-side wrapper.
- pyspf looks names up through its module-level `spf.DNSLookup`. We install one dispatcher
  there once, at import, which sends the query to the resolver bound to the *current thread*
  (a thread-local set for the duration of a check). Concurrent checks on different threads
  thus each use their own resolver, and nothing reaches the system resolver.
- pyspf enforces the RFC 7208 §4.6.4 limits: 10 DNS-querying terms (include loops end there
  as permerror) and 2 void lookups; a temporary DNS failure is temperror.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import spf

from mailsrv.dns.resolver import DNSNotFound, DNSTemporaryError, Resolver

SPFResult = Literal["none", "neutral", "pass", "fail", "softfail", "temperror", "permerror"]
_RESULTS: frozenset[str] = frozenset(("none", "neutral", "pass", "fail", "softfail", "temperror", "permerror"))

# RFC 7208 §4.6.4: at least 20 seconds overall before temperror; we use our resolver's
# per-query timeout inside that.
SPF_TOTAL_SECONDS = 20

_current = threading.local()


def _lookup(name: str, qtype: str, strict: bool = True, timeout: float | None = None) -> list[tuple[Any, Any]]:
    """The pyspf DNS hook: [((name, qtype), value), ...] in pyspf's shapes."""
    resolver: Resolver | None = getattr(_current, "resolver", None)
    if resolver is None:
        raise spf.TempError("DNS: no resolver bound to this thread")
    try:
        if qtype in ("A", "AAAA"):
            return [((name, qtype), r.address) for r in resolver.query_sync(name, qtype)]
        if qtype == "MX":
            return [((name, qtype), (int(r.preference), str(r.exchange))) for r in resolver.query_sync(name, qtype)]
        if qtype == "PTR":
            return [((name, qtype), r.target.to_text(True)) for r in resolver.query_sync(name, qtype)]
        if qtype in ("TXT", "SPF"):
            return (
                [((name, qtype), list(r.strings)) for r in resolver.query_sync(name, "TXT")] if qtype == "TXT" else []
            )
        if qtype == "CNAME":
            return []
    except DNSNotFound:
        return []
    except DNSTemporaryError as e:
        raise spf.TempError(f"DNS {e}") from None
    return []


spf.DNSLookup = _lookup


@contextmanager
def _bound(resolver: Resolver) -> Iterator[None]:
    previous = getattr(_current, "resolver", None)
    _current.resolver = resolver
    try:
        yield
    finally:
        _current.resolver = previous


@dataclass(frozen=True)
class SPFVerdict:
    result: SPFResult
    domain: str  # the domain checked: the MAIL FROM domain, or the HELO name
    explanation: str = ""


def check_spf_sync(resolver: Resolver, remote_ip: str, sender: str, helo: str) -> SPFVerdict:
    """Checks `sender` (an address; "" for the null reverse-path, then postmaster@helo per
    RFC 7208 §2.4) from `remote_ip`. Blocks; call from a thread."""
    if not sender:
        sender = f"postmaster@{helo}"
    domain = sender.rpartition("@")[2].lower()
    if not domain:
        return SPFVerdict("none", domain, "no domain")
    with _bound(resolver):
        try:
            q = spf.query(i=remote_ip, s=sender, h=helo, querytime=SPF_TOTAL_SECONDS)
            result, _code, explanation = q.check()
        except Exception as e:  # pyspf on hostile input: a recorded result, never a crash
            return SPFVerdict("temperror", domain, f"{type(e).__name__}: {e}")
    result = str(result).lower()
    if result not in _RESULTS:
        result = "permerror"
    return SPFVerdict(result, domain, str(explanation))  # type: ignore[arg-type]


async def check_spf(resolver: Resolver, remote_ip: str, sender: str, helo: str) -> SPFVerdict:
    return await resolver.in_thread(check_spf_sync, resolver, remote_ip, sender, helo)
