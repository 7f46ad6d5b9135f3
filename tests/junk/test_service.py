"""mailsrv.junk.service: classifications of one account run in parallel (reads), changes one at a time in order,
and "nothing trained yet" is known from memory."""

from __future__ import annotations

import threading
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.trial.unittest import TestCase

from mailsrv.junk.filter import JunkFilter
from mailsrv.junk.service import JunkFilters
from mailsrv.junk.worddb import WordDB
from tests.junk.corpus import ham, spam


class ServiceTests(TestCase):
    def setUp(self) -> None:
        self.filters = JunkFilters(Path(self.mktemp()), reactor)
        self.addCleanup(self.filters.close)

    def test_reads_of_one_account_run_in_parallel(self) -> Deferred[object]:
        # Both reads must be in their threads at once to pass the barrier; queued one after the other
        # (as every call of an account was before), the first would time out waiting for the second.
        barrier = threading.Barrier(2, timeout=10)

        def classify(junk: JunkFilter) -> int:
            barrier.wait()
            return junk.db.totals()[0]

        d = gatherResults([self.filters.read("alice", classify), self.filters.read("alice", classify)])
        return d.addCallback(self.assertEqual, [0, 0])

    def test_untrained_is_known_from_memory(self) -> Deferred[None]:
        async def run() -> None:
            # Never opened: not known, the delivery asks the filter (which opens it in a thread).
            self.assertFalse(self.filters.untrained("alice"))
            await self.filters.read("alice", lambda j: j.classify(spam(1)))
            self.assertTrue(self.filters.untrained("alice"))
            await self.filters.call("alice", lambda j: j.train(ham(1), False))
            self.assertFalse(self.filters.untrained("alice"))
            await self.filters.call("alice", lambda j: j.db.reset())
            self.assertTrue(self.filters.untrained("alice"))

        return Deferred.fromCoroutine(run())


def test_reads_go_to_the_runner_given(tmp_path: Path) -> None:
    """The daemon hands classifications to its `files` pool (mailsrv/pools.py), whose hand-off costs the reactor
    less than Twisted's pool; changes stay in the reactor's pool."""
    from twisted.internet.defer import maybeDeferred

    ran: list[str] = []

    def runner(f: object, /, *args: object, **kwargs: object) -> Deferred[object]:
        ran.append(threading.current_thread().name)
        return maybeDeferred(f, *args, **kwargs)  # type: ignore[arg-type]

    filters = JunkFilters(tmp_path, reactor, run_read=runner)
    try:
        results: list[object] = []
        filters.read("alice", lambda j: j.classify(spam(1)).score).addCallback(results.append)
        assert ran and results == [None]  # untrained: no score
    finally:
        filters.close()


def test_the_daemon_classifies_in_its_files_pool(tmp_path: Path) -> None:
    from tests.ops.world import make_server

    server = make_server(tmp_path)
    assert server.junk is not None and server.pools is not None
    assert server.junk._run_read == server.pools.files


def test_totals_cached_by_the_writer(tmp_path: Path) -> None:
    db = WordDB(tmp_path / "w.db")
    assert db.cached_totals is None
    assert db.totals() == (0, 0) and db.cached_totals == (0, 0)
    junk = JunkFilter(tmp_path / "j.db")
    junk.train(spam(1), True)
    junk.train(ham(1), False)
    assert junk.db.cached_totals == (1, 1)
    junk.untrain(spam(1))
    assert junk.db.cached_totals == (1, 0)  # (ham, spam)
    # What the database says, read afresh.
    assert JunkFilter(tmp_path / "j.db").db.totals() == (1, 0)


def test_a_read_older_than_a_change_is_not_cached(tmp_path: Path) -> None:
    """A reader that read the totals before a training committed must not put its old figures in the cache."""
    junk = JunkFilter(tmp_path / "j.db")
    junk.settings()  # loaded before the reader is replaced
    db = junk.db
    real_reader = db._reader

    class Interleaved:
        """The reader's connection; the training commits between the reader's query and its caching."""

        def __init__(self) -> None:
            self.conn = real_reader()

        def execute(self, *args: object) -> object:
            rows = self.conn.execute(*args).fetchall()  # type: ignore[arg-type]
            junk.train(ham(2), False)

            class Rows:
                def fetchone(self) -> object:
                    return rows[0]

            return Rows()

    db._reader = lambda: Interleaved()  # type: ignore[assignment,return-value,method-assign]
    assert db.totals() == (0, 0)  # the reader's (old) answer
    db._reader = real_reader  # type: ignore[method-assign]
    assert db.cached_totals == (1, 0)  # the training's, not the reader's
