"""SPF (RFC 7208) through pyspf, with every DNS query going to our resolver.

Invariants:
- `check_spf_sync` blocks (pyspf is synchronous) and runs in a pool thread; `check_spf` is
  the reactor-side wrapper.
- pyspf looks names up through its module-level `spf.DNSLookup`. We install one dispatcher
  there once, at import, which sends the query to the resolver bound to the *current thread*
  (a thread-local set for the duration of a check). Concurrent checks on different threads
  thus each use their own resolver, and nothing reaches the system resolver.
- With an `SPFCache`, a result is reused for the same (client IP, MAIL FROM as given, HELO)
  while every DNS answer it was computed from is still cached (mailsrv/dns/resultcache.py):
  the evaluation is a function of those inputs and the answers alone. Not stored: temperror
  (and any failure), a result that needed a query, and one whose records use the %{t} macro
  (the current time, RFC 7208 §7.2). pyspf is given no receiver name, so %{r} is constant.
- pyspf enforces the RFC 7208 §4.6.4 limits: 10 DNS-querying terms (include loops end there
  as permerror) and 2 void lookups; a temporary DNS failure is temperror.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Literal

import spf

from mailsrv.dns.resolver import DNSNotFound, DNSTemporaryError, Resolver, Seen
from mailsrv.dns.resultcache import ResultCache

SPFResult = Literal["none", "neutral", "pass", "fail", "softfail", "temperror", "permerror"]
_RESULTS: frozenset[str] = frozenset(("none", "neutral", "pass", "fail", "softfail", "temperror", "permerror"))

# RFC 7208 §4.6.4: at least 20 seconds overall before temperror; we use our resolver's
# per-query timeout inside that.
SPF_TOTAL_SECONDS = 20

# The check running on this thread: (resolver, what its lookups saw), or None.
_current = threading.local()


def _lookup(name: str, qtype: str, strict: bool = True, timeout: float | None = None) -> list[tuple[Any, Any]]:
    """The pyspf DNS hook: [((name, qtype), value), ...] in pyspf's shapes."""
    bound: tuple[Resolver, Seen] | None = getattr(_current, "check", None)
    if bound is None:
        raise spf.TempError("DNS: no resolver bound to this thread")
    resolver, seen = bound
    try:
        if qtype in ("A", "AAAA"):
            return [((name, qtype), r.address) for r in resolver.query_sync(name, qtype, seen)]
        if qtype == "MX":
            return [
                ((name, qtype), (int(r.preference), str(r.exchange))) for r in resolver.query_sync(name, qtype, seen)
            ]
        if qtype == "PTR":
            return [((name, qtype), r.target.to_text(True)) for r in resolver.query_sync(name, qtype, seen)]
        if qtype == "TXT":
            out: list[tuple[Any, Any]] = []
            for r in resolver.query_sync(name, "TXT", seen):
                if any(b"%{t" in s.lower() for s in r.strings):
                    seen.cached = False  # %{t} expands to the current time: the result is not reusable
                out.append(((name, qtype), list(r.strings)))
            return out
        return []  # SPF (RFC 7208 §3.1: TXT only), CNAME (followed by the resolver)
    except DNSNotFound:
        return []
    except DNSTemporaryError as e:
        raise spf.TempError(f"DNS {e}") from None


spf.DNSLookup = _lookup


@dataclass(frozen=True)
class SPFVerdict:
    result: SPFResult
    domain: str  # the domain checked: the MAIL FROM domain, or the HELO name
    explanation: str = ""


# (client IP, sender, HELO) as given to pyspf.
SPFCache = ResultCache[tuple[str, str, str], SPFVerdict]


def check_spf_sync(
    resolver: Resolver, remote_ip: str, sender: str, helo: str, cache: SPFCache | None = None
) -> SPFVerdict:
    """Checks `sender` (an address; "" for the null reverse-path, then postmaster@helo per
    RFC 7208 §2.4) from `remote_ip`. Blocks; call from a thread. `cache` must belong to
    `resolver`."""
    if not sender:
        sender = f"postmaster@{helo}"
    key = (remote_ip, sender, helo)
    if cache is not None:
        hit = cache.get(key)
        if hit is not None:
            return hit
    domain = sender.rpartition("@")[2].lower()
    if not domain:
        return SPFVerdict("none", domain, "no domain")
    seen = Seen()
    generation = resolver.generation
    previous = getattr(_current, "check", None)
    _current.check = (resolver, seen)
    try:
        q = spf.query(i=remote_ip, s=sender, h=helo, querytime=SPF_TOTAL_SECONDS)
        result, _code, explanation = q.check()
    except Exception as e:  # pyspf on hostile input: a recorded result, never a crash
        return SPFVerdict("temperror", domain, f"{type(e).__name__}: {e}")
    finally:
        _current.check = previous
    result = str(result).lower()
    if result not in _RESULTS:
        result = "permerror"
    verdict = SPFVerdict(result, domain, str(explanation))  # type: ignore[arg-type]
    if cache is not None and result != "temperror":
        cache.put(key, verdict, seen, generation)
    return verdict


async def check_spf(
    resolver: Resolver, remote_ip: str, sender: str, helo: str, cache: SPFCache | None = None
) -> SPFVerdict:
    return await resolver.in_thread(check_spf_sync, resolver, remote_ip, sender, helo, cache)
