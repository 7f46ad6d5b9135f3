"""Opening account stores: one `SQLiteAccountStore` per account per process."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, DeferredList
from twisted.logger import Logger
from twisted.python.failure import Failure

from mailsrv.pools import Pools, Runner, reactor_pools
from mailsrv.store.account import SQLiteAccountStore
from mailsrv.store.interfaces import StoreUnavailable
from mailsrv.store.migration import index_version, migrate
from mailsrv.store.schema import SCHEMA_VERSION
from mailsrv.store.unavailable import unavailable_on_error

log = Logger()


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
        self._migrating: dict[str, Deferred[None]] = {}

    def open(self, account: str) -> SQLiteAccountStore:
        """The account's store, opened on first use. Raises StoreUnavailable when its index
        cannot be opened (the next call tries again), and while its index is being brought
        up to the current version in a pool thread (`migration.py`; started by the first
        open of an account with an old index)."""
        store = self._open.get(account)
        if store is None:
            if not account or "/" in account or account.startswith("."):
                raise ValueError(f"invalid account name {account!r}")
            root = self.accounts_dir / account
            if account in self._migrating:
                raise StoreUnavailable("the account's index is being upgraded, try again shortly")
            with unavailable_on_error("open the account's index"):
                if index_version(root / "index.db") < SCHEMA_VERSION:
                    self._start_migration(account, root)  # raises unless it finished at once
                store = SQLiteAccountStore(account, root, lambda: self._quota_for(account), self._reactor, self._pools)
            self._open[account] = store
        return store

    def _start_migration(self, account: str, root: Path) -> None:
        d = self._runner()(migrate, account, root)
        if d.called:  # inline pools (tests, tools): done already
            failures: list[Failure] = []
            d.addErrback(failures.append)
            if failures:
                failures[0].raiseException()
            return
        self._migrating[account] = d

        def finished(result: object) -> None:
            del self._migrating[account]
            if isinstance(result, Failure):
                log.failure("migrating the index of {account} failed", failure=result, account=account)

        d.addBoth(finished)
        raise StoreUnavailable("the account's index is being upgraded, try again shortly")

    def _runner(self) -> Runner:
        if self._pools is not None:
            return self._pools.files
        if self._reactor is None:
            from twisted.internet import reactor

            return reactor_pools(reactor).files
        return reactor_pools(self._reactor).files

    def migrating(self, account: str) -> Deferred[Any] | None:
        """Fires when the migration of the account's index running now has finished (None
        when none runs); its outcome is logged, not passed on."""
        d = self._migrating.get(account)
        if d is None:
            return None
        done: Deferred[Any] = Deferred()

        def tell(result: object) -> object:
            done.callback(None)
            return result

        d.addBoth(tell)
        return done

    def drain(self) -> Deferred[Any]:
        """Fires once every append running now has finished, stored or failed."""
        return DeferredList([d for store in self._open.values() for d in store.appends_in_flight()])

    def close_all(self) -> None:
        for store in self._open.values():
            store.close()
        self._open.clear()
