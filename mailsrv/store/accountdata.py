"""Small per-account application state (webmail settings, remembered answers): not mail."""

from __future__ import annotations

from twisted.internet.defer import Deferred, succeed

from mailsrv.store.core import IndexCore
from mailsrv.store.interfaces import InvalidRequest

MAX_DATA_NAME = 1000


MAX_DATA_VALUE = 1024 * 1024


class AccountData(IndexCore):
    """get_data, put_data, list_data."""

    def get_data(self, namespace: str, key: str) -> Deferred[bytes | None]:
        row = self.db.execute(
            "SELECT value FROM account_data WHERE namespace = ? AND key = ?", (namespace, key)
        ).fetchone()
        return succeed(bytes(row[0]) if row else None)

    def put_data(self, namespace: str, key: str, value: bytes | None) -> Deferred[None]:
        for name in (namespace, key):
            if not name or len(name) > MAX_DATA_NAME:
                raise InvalidRequest(f"account data names have 1 to {MAX_DATA_NAME} characters")
        if value is not None and len(value) > MAX_DATA_VALUE:
            raise InvalidRequest(f"account data values have at most {MAX_DATA_VALUE} bytes")
        with self._atomic():
            if value is None:
                self.db.execute("DELETE FROM account_data WHERE namespace = ? AND key = ?", (namespace, key))
            else:
                self.db.execute(
                    "INSERT OR REPLACE INTO account_data (namespace, key, value) VALUES (?, ?, ?)",
                    (namespace, key, value),
                )
        return self._commit()

    def list_data(self, namespace: str, limit: int = 1000) -> Deferred[list[tuple[str, bytes]]]:
        if not 1 <= limit <= 10_000:
            raise InvalidRequest("account data listings have 1 to 10,000 entries")
        rows = self.db.execute(
            "SELECT key, value FROM account_data WHERE namespace = ? ORDER BY key LIMIT ?", (namespace, limit)
        ).fetchall()
        return succeed([(str(r[0]), bytes(r[1])) for r in rows])
