"""The one DNS resolver of the daemon: dnspython's stub resolver run in the reactor's
thread pool, with a bounded TTL cache and typed results.

Invariants:
- Nothing here blocks the reactor: the `async` methods run the blocking dnspython query via
  `deferToThreadPool`, but answer from the cache on the calling thread when every answer they
  need is cached (no pool round trip: the queue asks MX, A/AAAA and the MTA-STS TXT for every
  delivery); the `*_sync` methods exist for code that already runs in a thread
  (the SPF and DKIM libraries call back into them from their worker thread).
- A name that does not exist raises `DNSNotFound` (NXDOMAIN, RFC 1035 §4.1.1 RCODE 3); an
  empty answer (NOERROR/NODATA) is an empty result, not an error; timeouts, SERVFAIL,
  REFUSED and malformed answers raise `DNSTemporaryError`, so callers can tell a permanent
  answer from one worth retrying.
- Cached answers live at most `min(record TTL, max_cache_seconds)`; negative answers
  (NXDOMAIN, NODATA) are cached for at most `negative_cache_seconds`; temporary failures are
  never cached. The cache holds at most `cache_size` entries (oldest evicted first).
- Callers that cache what they computed from answers (SPF and DMARC results) pass a `Seen`
  to the lookups: it gets the earliest expiry of the cached answers used and notes any answer
  that was not cached, and `generation` changes when the cache is cleared.
- The nameservers come from config (`[dns] nameservers`, "ip:port"); when none are given the
  system configuration (/etc/resolv.conf) is used. Tests always give a loopback server.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import dns.exception
import dns.message
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver

from mailsrv.pools import Runner, reactor_pools

T = TypeVar("T")


class DNSError(Exception):
    """Base of the resolver's errors."""


class DNSNotFound(DNSError):
    """NXDOMAIN: the name does not exist (a permanent answer)."""


class DNSTemporaryError(DNSError):
    """Timeout, SERVFAIL, REFUSED, unreachable or malformed answer: try again later."""


@dataclass(frozen=True)
class MXRecord:
    preference: int
    host: str  # A-label form, no trailing dot; "" for the null MX target "."


@dataclass(frozen=True)
class MXResult:
    """The MX records of a domain, sorted by preference (RFC 5321 §5.1)."""

    records: tuple[MXRecord, ...]

    @property
    def null_mx(self) -> bool:
        """RFC 7505 §3: a single MX with target "." means the domain accepts no mail."""
        return len(self.records) == 1 and self.records[0].host == ""

    @property
    def hosts(self) -> tuple[str, ...]:
        return tuple(r.host for r in self.records if r.host)


_Answer = tuple[Any, ...]  # the rdata objects of one RRset


class Seen:
    """What a sequence of lookups depended on, for a result computed from them: `expires` is the
    earliest expiry (the resolver's clock) of the cached answers used, and `cached` stays True
    only while every answer came from the cache (a query sent, failed or refused in cache-only
    mode clears it). A result may be reused until `expires` only if `cached`."""

    __slots__ = ("cached", "expires")

    def __init__(self) -> None:
        self.expires = float("inf")
        self.cached = True


class Resolver:
    """Stub resolver. `reactor` must provide `getThreadPool()` (the real reactor does)."""

    def __init__(
        self,
        reactor: Any,
        nameservers: Sequence[tuple[str, int]] = (),
        timeout: float = 5.0,
        cache_size: int = 4096,
        max_cache_seconds: int = 3600,
        negative_cache_seconds: int = 300,
        clock: Callable[[], float] = time.monotonic,
        run_in_pool: Runner | None = None,
    ) -> None:
        self._reactor = reactor
        # The DNS pool (mailsrv.pools) so that slow lookups cannot starve other blocking work.
        self._run = run_in_pool or reactor_pools(reactor).dns
        if nameservers:
            self._stub = dns.resolver.Resolver(configure=False)
            self._stub.nameservers = [dns.nameserver.Do53Nameserver(ip, port) for ip, port in nameservers]
        else:
            try:
                self._stub = dns.resolver.Resolver(configure=True)
            except dns.resolver.NoResolverConfiguration:
                # No /etc/resolv.conf: a local resolver is the only sensible guess, and
                # queries fail as temporary errors rather than the daemon refusing to start.
                self._stub = dns.resolver.Resolver(configure=False)
                self._stub.nameservers = ["127.0.0.1"]
        self._stub.timeout = timeout
        self._stub.lifetime = timeout
        self._cache_size = cache_size
        self._max_cache = max_cache_seconds
        self._negative_cache = negative_cache_seconds
        self._clock = clock
        # (name, rdtype) -> (expires, rdatas or DNSNotFound); guarded by _lock since
        # lookups run on several pool threads at once.
        self._cache: OrderedDict[tuple[str, str], tuple[float, _Answer | DNSNotFound]] = OrderedDict()
        self._lock = threading.Lock()
        self._cache_only = threading.local()
        # Changes when the cache is cleared: results computed from answers before are stale.
        self.generation = 0

    def now(self) -> float:
        """The clock of cache expiries (`Seen.expires`)."""
        return self._clock()

    @contextmanager
    def cache_only(self) -> Iterator[list[bool]]:
        """Within the block, lookups on this thread answer from the cache only: a miss sets
        the yielded flag (`missed[0]`) and raises DNSTemporaryError instead of querying, so
        code that handles lookup failures goes on without blocking. Whatever it computed is
        then incomplete and must be computed again in a thread (`query_sync` there)."""
        missed = [False]
        previous = self.set_cache_only(missed)
        try:
            yield missed
        finally:
            self.set_cache_only(previous)

    def set_cache_only(self, missed: list[bool] | None) -> list[bool] | None:
        """`cache_only` without a context manager (for hot paths): lookups on this thread
        answer from the cache only while `missed` is not None, and a miss sets `missed[0]`.
        Returns the previous setting, to be restored."""
        previous: list[bool] | None = getattr(self._cache_only, "missed", None)
        self._cache_only.missed = missed
        return previous

    # -- blocking core, for pool threads -------------------------------------------------

    def cached(self, name: str, rdtype: str) -> _Answer | None:
        """The cached rdata objects for (name, rdtype), None when not cached (or expired).
        Raises DNSNotFound for a cached NXDOMAIN. Never blocks."""
        hit = self._cached((_normalise(name), rdtype.upper()), self._clock())
        if hit is None:
            return None
        if isinstance(hit[1], DNSNotFound):
            raise DNSNotFound(str(hit[1]))
        return hit[1]

    def _cached(self, key: tuple[str, str], now: float) -> tuple[float, _Answer | DNSNotFound] | None:
        """The unexpired cache entry (expires, answer) for key, or None."""
        with self._lock:
            hit = self._cache.get(key)
            if hit is None:
                return None
            if hit[0] <= now:
                del self._cache[key]
                return None
        return hit

    def query_sync(self, name: str, rdtype: str, seen: Seen | None = None) -> _Answer:
        """The rdata objects for (name, rdtype); () for NODATA. Raises DNSNotFound or
        DNSTemporaryError. Blocks: call it from a thread only. `seen` records the answer's
        expiry, or that it was not cached."""
        key = (_normalise(name), rdtype.upper())
        now = self._clock()
        hit = self._cached(key, now)
        if hit is not None:
            if seen is not None and hit[0] < seen.expires:
                seen.expires = hit[0]
            if isinstance(hit[1], DNSNotFound):
                raise DNSNotFound(str(hit[1]))
            return hit[1]
        if seen is not None:
            seen.cached = False
        missed: list[bool] | None = getattr(self._cache_only, "missed", None)
        if missed is not None:
            missed[0] = True
            raise DNSTemporaryError(f"{key[0]} {key[1]}: not cached")
        try:
            answer = self._stub.resolve(key[0] + ".", key[1], search=False, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            self._store(key, now + self._negative_cache, DNSNotFound(f"{key[0]}: no such domain"))
            raise DNSNotFound(f"{key[0]}: no such domain") from None
        except (dns.resolver.NoNameservers, dns.exception.Timeout, dns.resolver.LifetimeTimeout) as e:
            raise DNSTemporaryError(f"{key[0]} {key[1]}: {_short(e)}") from None
        except dns.exception.DNSException as e:
            # Malformed answers, YXDOMAIN, bad names...: never a crash, a temporary failure.
            raise DNSTemporaryError(f"{key[0]} {key[1]}: {_short(e)}") from None
        rrset = answer.rrset
        if rrset is None:
            self._store(key, now + min(self._negative_cache, _negative_ttl(answer.response)), ())
            return ()
        rdatas = tuple(rrset)
        self._store(key, now + min(self._max_cache, rrset.ttl), rdatas)
        return rdatas

    def _store(self, key: tuple[str, str], expires: float, value: _Answer | DNSNotFound) -> None:
        with self._lock:
            self._cache[key] = (expires, value)
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def mx_sync(self, domain: str) -> MXResult:
        return _mx_result(self.query_sync(domain, "MX"))

    def addresses_sync(self, host: str) -> tuple[str, ...]:
        """IPv6 and IPv4 addresses of `host` (AAAA first). DNSNotFound only if the name does
        not exist; a temporary failure of one family is raised only if the other gave nothing."""
        out: list[str] = []
        temp: DNSTemporaryError | None = None
        for rdtype in ("AAAA", "A"):
            try:
                out.extend(r.address for r in self.query_sync(host, rdtype))
            except DNSTemporaryError as e:
                temp = e
        if not out and temp is not None:
            raise temp
        return tuple(out)

    def txt_sync(self, name: str, seen: Seen | None = None) -> tuple[bytes, ...]:
        """Each TXT record with its character-strings concatenated (RFC 7208 §3.3)."""
        return tuple(b"".join(r.strings) for r in self.query_sync(name, "TXT", seen))

    # -- the reactor side ----------------------------------------------------------------

    async def in_thread(self, f: Callable[..., T], *args: Any) -> T:
        """Runs `f(*args)` in the reactor's thread pool and waits for it."""
        result: T = await self._run(f, *args)
        return result

    async def mx(self, domain: str) -> MXResult:
        hit = self.cached(domain, "MX")
        if hit is not None:
            return _mx_result(hit)
        return await self.in_thread(self.mx_sync, domain)

    async def addresses(self, host: str) -> tuple[str, ...]:
        aaaa = self.cached(host, "AAAA")
        a = self.cached(host, "A") if aaaa is not None else None
        if aaaa is not None and a is not None:
            return tuple(r.address for r in (*aaaa, *a))
        return await self.in_thread(self.addresses_sync, host)

    async def txt(self, name: str) -> tuple[bytes, ...]:
        hit = self.cached(name, "TXT")
        if hit is not None:
            return tuple(b"".join(r.strings) for r in hit)
        return await self.in_thread(self.txt_sync, name)

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()
            self.generation += 1


def _mx_result(answer: _Answer) -> MXResult:
    records = [
        MXRecord(
            int(r.preference),
            r.exchange.to_text(omit_final_dot=True).lower() if r.exchange != dns.name.root else "",
        )
        for r in answer
    ]
    records.sort(key=lambda r: (r.preference, r.host))
    return MXResult(tuple(records))


def _normalise(name: str) -> str:
    name = name.rstrip(".").lower()
    if not name.isascii():
        name = dns.name.from_unicode(name).to_text(omit_final_dot=True)
    return name


def _negative_ttl(response: dns.message.Message | None) -> int:
    # RFC 2308 §5: the SOA minimum in the authority section bounds negative caching.
    if response is not None:
        for rrset in response.authority:
            if rrset.rdtype == dns.rdatatype.SOA:
                return min(int(rrset.ttl), int(rrset[0].minimum))
    return 0


def _short(e: Exception) -> str:
    text = str(e) or type(e).__name__
    return text if len(text) < 200 else text[:200] + "..."
