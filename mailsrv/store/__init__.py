"""Per-account message store (see `mailsrv.store.interfaces` for the contract)."""

from mailsrv.store.account import SQLiteAccountStore
from mailsrv.store.registry import SQLiteStoreRegistry

__all__ = ["SQLiteAccountStore", "SQLiteStoreRegistry"]
