"""IMAP renderings of a message's immutable data (ENVELOPE, BODY, BODYSTRUCTURE), computed
once and shared by the sessions of a listener in a bounded LRU (the store keeps no IMAP
shapes: a message's content never changes, so its rendering stays right while its id lives)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable


class RenderedCache:
    ENTRIES = 50_000

    def __init__(self) -> None:
        self._entries: OrderedDict[tuple[str, int, str], bytes] = OrderedDict()

    def get(self, account: str, message_id: int, key: str, compute: Callable[[], bytes]) -> bytes:
        k = (account, message_id, key)
        value = self._entries.get(k)
        if value is None:
            value = compute()
            self._entries[k] = value
            if len(self._entries) > self.ENTRIES:
                self._entries.popitem(last=False)
        return value
