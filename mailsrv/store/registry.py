"""Opening account stores: one `SQLiteAccountStore` per account per process."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, DeferredList

from mailsrv.pools import Pools
from mailsrv.store.account import SQLiteAccountStore
from mailsrv.store.unavailable import unavailable_on_error


class SQLiteStoreRegistry:
    """`StoreRegistry` for the embedded backend: `data/accounts/<account>/`. Stores use
    `reactor` (the global one when None) for their timers and `pools` for blocking work (the
    reactor's thread pool when None); tests pass a `task.Clock` and `inline_pools()`."""

    def __init__(
        self,
        data_dir: Path,
        quota_for: Callable[[str], int | None] = lambda account: None,
        reactor: Any = None,
        pools: Pools | None = None,
    ) -> None:
        self.accounts_dir = Path(data_dir) / "accounts"
        self.accounts_dir.mkdir(parents=True, exist_ok=True)
        self._quota_for = quota_for
        self._reactor = reactor
        self._pools = pools
        self._open: dict[str, SQLiteAccountStore] = {}

    def open(self, account: str) -> SQLiteAccountStore:
        """The account's store, opened on first use. Raises StoreUnavailable when its index
        cannot be opened (the next call tries again)."""
        store = self._open.get(account)
        if store is None:
            if not account or "/" in account or account.startswith("."):
                raise ValueError(f"invalid account name {account!r}")
            with unavailable_on_error("open the account's index"):
                store = SQLiteAccountStore(
                    account, self.accounts_dir / account, lambda: self._quota_for(account), self._reactor, self._pools
                )
            self._open[account] = store
        return store

    def drain(self) -> Deferred[Any]:
        """Fires once every append running now has finished, stored or failed."""
        return DeferredList([d for store in self._open.values() for d in store.appends_in_flight()])

    def close_all(self) -> None:
        for store in self._open.values():
            store.close()
        self._open.clear()
