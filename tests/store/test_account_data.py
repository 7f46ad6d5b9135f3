"""Account data (`AccountStore.get_data`/`put_data`/`list_data`): small per-account state of
the applications, durable, kept apart from mail (no change-log entry, no quota)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from mailsrv.pools import inline_pools
from mailsrv.store import SQLiteStoreRegistry
from mailsrv.store.interfaces import InvalidRequest


class AccountDataTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mailsrv-data-"))
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.clock = Clock()
        self.registry = SQLiteStoreRegistry(self.dir, reactor=self.clock, pools=inline_pools())
        self.addCleanup(self.registry.close_all)
        self.store = self.registry.open("alice")

    def done(self, d: Any) -> Any:
        self.clock.advance(0)
        return self.successResultOf(d)

    def test_put_get_list_delete_and_survive_reopen(self) -> None:
        seq = self.done(self.store.last_change())
        self.assertIsNone(self.done(self.store.get_data("webmail", "settings")))
        self.done(self.store.put_data("webmail", "settings", b'{"a":1}'))
        self.done(self.store.put_data("webmail", "settings", b'{"a":2}'))
        self.done(self.store.put_data("webmail.no", "from:b@example.org", b"1"))
        self.done(self.store.put_data("webmail.no", "from:a@example.org", b"1"))
        self.assertEqual(self.done(self.store.get_data("webmail", "settings")), b'{"a":2}')
        self.assertEqual(
            [k for k, _ in self.done(self.store.list_data("webmail.no"))], ["from:a@example.org", "from:b@example.org"]
        )
        self.assertEqual(len(self.done(self.store.list_data("webmail.no", limit=1))), 1)
        self.done(self.store.put_data("webmail.no", "from:a@example.org", None))
        self.assertEqual(self.done(self.store.last_change()), seq)  # not mail: no change entry
        self.registry.close_all()
        reopened = SQLiteStoreRegistry(self.dir, reactor=self.clock, pools=inline_pools()).open("alice")
        try:
            self.assertEqual(self.done(reopened.get_data("webmail", "settings")), b'{"a":2}')
            self.assertEqual([k for k, _ in self.done(reopened.list_data("webmail.no"))], ["from:b@example.org"])
        finally:
            reopened.close()

    def test_limits(self) -> None:
        with self.assertRaises(InvalidRequest):
            self.store.put_data("", "k", b"v")
        with self.assertRaises(InvalidRequest):
            self.store.put_data("n", "k" * 1001, b"v")
        with self.assertRaises(InvalidRequest):
            self.store.put_data("n", "k", b"v" * (1024 * 1024 + 1))
        with self.assertRaises(InvalidRequest):
            self.store.list_data("n", limit=0)
