"""The embedded account store: a SQLite index (WAL) plus message files.

One module per job, put together here as mixins of `SQLiteAccountStore`: `core` (connection,
savepoints, durable commits, listeners, counters, \\Recent floors), `reading` (mailboxes,
message lists, part trees, bodies), `mailboxes` (create/rename/delete/subscribe), `appending`
(appends, group commit, delivery ids), `transfer` (copy, move), `flagging` (STORE, EXPUNGE),
`listing` (summaries, sorted pages, threads, change log), `accountdata`; helpers in `names`,
`flagset`, `snapshot`, `unavailable`. This module opens the store (migration, orphans).

Invariants (see also `mailsrv.store.interfaces`):
- The daemon is the only writer; all index access happens in the reactor thread through one
  connection. Commits run inline and only write the WAL (synchronous=NORMAL); every mutation
  returns a Deferred that fires once its commit is durable: `walsync.IndexSync` fsyncs the
  WAL in the fsync pool, shared by every commit made meanwhile (group commit). Message file
  writes and fsyncs run in the fsync pool too, reads and unlinks in the files pool
  (`mailsrv.pools`); the reactor and the pools are the ones the registry was given.
- A message is visible only once its file is durable *and* its row committed: appends write
  their rows in the same synchronous call that commits them (all appends whose file sync
  finished in that reactor turn share one transaction). Orphan files (written but never
  committed) and temporary files are removed when the store is opened. Files of expunged
  messages are unlinked only once the expunge is durable.
- Every mutation runs in a savepoint (`_atomic`): a failing operation undoes only its own
  statements and the next commit never persists half of it.
- One modseq per operation: every message changed by one STORE/EXPUNGE/APPEND batch gets the
  mailbox's next modseq (RFC 7162 allows equal modseqs); HIGHESTMODSEQ is the largest.
- Mailbox counters (messages, unseen, deleted, size, deleted_size) are maintained in the same
  transaction as the change, so STATUS never scans messages.
- Listeners are told of a change right after its commit, synchronously, with the caller's
  origin: what a listener is told is what any read sees from then on. The caller's Deferred
  fires later, once the change is durable: only then may a client be told it is done.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.logger import Logger

from mailsrv.pools import Pools
from mailsrv.store.accountdata import AccountData
from mailsrv.store.appending import Appends
from mailsrv.store.flagging import FlagWrites
from mailsrv.store.listing import Listing
from mailsrv.store.mailboxes import MailboxWrites
from mailsrv.store.migration import fill_summaries
from mailsrv.store.schema import SCHEMA_VERSION, set_version

log = Logger()


class SQLiteAccountStore(MailboxWrites, Appends, FlagWrites, Listing, AccountData):
    """`AccountStore` on SQLite + files. Build it with `SQLiteStoreRegistry.open`."""

    def __init__(
        self,
        account: str,
        root: Path,
        quota_limit: Callable[[], int | None],
        reactor: Any = None,
        pools: Pools | None = None,
    ) -> None:
        super().__init__(account, root, quota_limit, reactor, pools)
        self._ensure_default_mailboxes()
        self._trim_delivered()
        if self._found_version < SCHEMA_VERSION:
            started = time.monotonic()
            log.info(
                "migrating the index of {account} from version {old} to {new}",
                account=account,
                old=self._found_version,
                new=SCHEMA_VERSION,
            )
            filled = fill_summaries(self.db, self.files.path)
            if filled:
                log.info("filled in summaries of {n} messages of {account}", n=filled, account=account)
            set_version(self.db)
            log.info(
                "index of {account} migrated in {seconds:.1f}s", account=account, seconds=time.monotonic() - started
            )
        # Whatever open and migration committed is durable before the first request.
        self.index_sync.sync_now()
        known = {int(r[0]) for r in self.db.execute("SELECT id FROM message")}
        removed = self.files.remove_orphans(known)
        if removed:
            log.info("removed {n} orphan message files of {account}", n=removed, account=account)

    def close(self) -> None:
        """Commits the rows of appends whose files are already durable, then closes the
        index. Appends still writing their files fail with StoreError afterwards (their
        files are orphans that the next open removes)."""
        if self._pending_rows:
            self._commit_now()
        self._closed = True
        self.db.close()  # the last connection's close checkpoints the WAL into the database, synced
        self.files.discard_unused()
