"""A bounded cache of results computed from DNS answers (SPF and DMARC evaluations), so that mail
from a sender seen a moment ago is not evaluated again.

Invariants:
- An entry lives no longer than the earliest expiry of the cached DNS answers it was computed
  from (`Seen.expires`, the resolver's clock), and never longer than `max_seconds`.
- Only results computed from cached answers alone are stored (`Seen.cached`): a result that
  needed a query, met a failure or ran short of answers in cache-only mode is not.
- Clearing the resolver's cache (`Resolver.generation`) invalidates every entry.
- At most `size` entries (least recently used evicted first): keys come from the peer (client
  IP, MAIL FROM, HELO, From: domain), so nobody can grow it without bound.
- Safe to use from the reactor and pool threads at once (one lock, held briefly).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

from mailsrv.dns.resolver import Resolver, Seen

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ResultCache(Generic[K, V]):
    def __init__(self, resolver: Resolver, size: int = 1024, max_seconds: float = 3600) -> None:
        self.resolver = resolver
        self.size = size
        self.max_seconds = max_seconds
        # key -> (expires, resolver generation, value)
        self._entries: OrderedDict[K, tuple[float, int, V]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        """The value stored for key, or None when there is none (or it expired)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[0] <= self.resolver.now() or entry[1] != self.resolver.generation:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry[2]

    def put(self, key: K, value: V, seen: Seen, generation: int) -> None:
        """Stores value, computed from the answers `seen` recorded, when it may be reused;
        `generation` is the resolver's from before the lookups."""
        if not seen.cached:
            return
        now = self.resolver.now()
        expires = min(seen.expires, now + self.max_seconds)
        if expires <= now:
            return
        with self._lock:
            if generation != self.resolver.generation:
                return
            self._entries[key] = (expires, generation, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
