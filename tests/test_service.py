"""The daemon's top service stops its parts in order: listeners, queue, then stores."""

from __future__ import annotations

from types import SimpleNamespace

from twisted.application.service import Service
from twisted.internet import defer, task

from mailsrv.service import OrderedStopService


class _Part(Service):
    def __init__(self, name: str, log: list[str], clock: task.Clock, delay: float) -> None:
        self.setName(name)
        self.log, self.clock, self.delay = log, clock, delay

    def stopService(self) -> defer.Deferred[None]:
        super().stopService()
        self.log.append(f"{self.name} stopping")
        d: defer.Deferred[None] = task.deferLater(self.clock, self.delay, lambda: None)
        d.addCallback(lambda _: self.log.append(f"{self.name} stopped"))
        return d


def test_children_stop_one_after_another_last_added_first() -> None:
    clock, log = task.Clock(), []
    top = OrderedStopService()
    for name, delay in (("stores", 1.0), ("queue", 5.0), ("listener", 0.5)):
        _Part(name, log, clock, delay).setServiceParent(top)
    top.startService()
    stopped = top.stopService()
    clock.advance(0.5)
    assert log == ["listener stopping", "listener stopped", "queue stopping"]
    clock.advance(5.0)
    assert log[-2:] == ["queue stopped", "stores stopping"] and not stopped.called
    clock.advance(1.0)
    assert log[-1] == "stores stopped" and stopped.called


def test_a_failing_child_does_not_keep_the_others_running() -> None:
    top = OrderedStopService()
    stopped: list[str] = []

    class Broken(Service):
        def stopService(self) -> None:
            raise RuntimeError("broken")

    class Fine(Service):
        def stopService(self) -> None:
            stopped.append("fine")

    Fine().setServiceParent(top)
    Broken().setServiceParent(top)
    top.startService()
    d = top.stopService()
    assert stopped == ["fine"] and d.called


def test_a_missing_postmaster_account_is_logged_at_start() -> None:
    from twisted.logger import LogLevel, formatEvent, globalLogPublisher

    from mailsrv.config.types import SMTPConfig
    from mailsrv.service import _log_postmaster_problem

    events: list[dict[str, object]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        for name in ("alice", "nobody"):
            server = SimpleNamespace(
                config=SimpleNamespace(smtp=SMTPConfig(postmaster_account=name)),
                dynamic=SimpleNamespace(current=SimpleNamespace(accounts={"alice": object()})),
            )
            _log_postmaster_problem(server)  # type: ignore[arg-type]
    finally:
        globalLogPublisher.removeObserver(events.append)
    [error] = [formatEvent(e) for e in events if e.get("log_level") == LogLevel.error]
    assert "'nobody' is no account" in error
