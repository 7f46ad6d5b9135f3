"""mailsrv.pools.WorkerPool: results and errors come back on the reactor thread, at most `size` threads run,
calls queued before stop() still run."""

from __future__ import annotations

import threading

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.trial.unittest import TestCase

from mailsrv.pools import WorkerPool


class WorkerPoolTests(TestCase):
    def setUp(self) -> None:
        self.pool = WorkerPool(reactor, 3, "test")
        self.addCleanup(self.pool.stop)

    def test_result_and_error_on_the_reactor_thread(self) -> Deferred[None]:
        async def run() -> None:
            main = threading.get_ident()
            seen: list[int] = []

            def where(x: int) -> int:
                seen.append(threading.get_ident())
                return x * 2

            self.assertEqual(await self.pool.run(where, 21), 42)
            self.assertNotEqual(seen, [main])
            with self.assertRaises(ZeroDivisionError):
                await self.pool.run(lambda: 1 // 0)
            self.assertEqual(threading.get_ident(), main)
            self.assertEqual(await self.pool.run(lambda *a, **k: (a, k), 1, b=2), ((1,), {"b": 2}))

        return Deferred.fromCoroutine(run())

    def test_runs_calls_in_parallel_up_to_its_size(self) -> Deferred[None]:
        async def run() -> None:
            barrier = threading.Barrier(3, timeout=10)
            running = 0
            most = 0
            lock = threading.Lock()

            def call() -> None:
                nonlocal running, most
                with lock:
                    running += 1
                    most = max(most, running)
                try:
                    barrier.wait()  # three at once, or a timeout
                finally:
                    with lock:
                        running -= 1

            await gatherResults([self.pool.run(call) for _ in range(9)])
            self.assertEqual(most, 3)
            self.assertLessEqual(len(self.pool._threads), 3)

        return Deferred.fromCoroutine(run())

    def test_stop_finishes_queued_calls_then_refuses(self) -> Deferred[None]:
        async def run() -> None:
            done: list[int] = []
            ds = [self.pool.run(done.append, n) for n in range(20)]
            self.pool.stop()
            self.assertEqual(sorted(done), list(range(20)))
            await gatherResults(ds)
            with self.assertRaises(RuntimeError):
                await self.pool.run(done.append, 99)

        return Deferred.fromCoroutine(run())
