"""A real `Server` on a temporary directory for ops tests: no daemon, no sockets, no threads.

The reactor is a `task.Clock` whose thread pool runs work inline, so ops functions that hash
in the pool or run `in_thread` complete before the call returns; argon2 has cheap test costs.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from mailsrv.address import Domain
from mailsrv.auth.passwords import PasswordHasher
from mailsrv.config.types import ListenerConfig, StaticConfig
from mailsrv.server import Server

T = TypeVar("T")


class InlinePool:
    def callInThreadWithCallback(
        self, on_result: Callable[..., Any], f: Callable[..., Any], *a: Any, **kw: Any
    ) -> None:
        try:
            result = f(*a, **kw)
        except BaseException:
            on_result(False, Failure())
        else:
            on_result(True, result)

    def callInThread(self, f: Callable[..., Any], *a: Any, **kw: Any) -> None:
        f(*a, **kw)


class InlineReactor(Clock):
    """A Clock with an inline thread pool (deferToThreadPool runs at once)."""

    def __init__(self) -> None:
        super().__init__()
        self._pool = InlinePool()

    def getThreadPool(self) -> InlinePool:
        return self._pool

    def callFromThread(self, f: Callable[..., Any], *a: Any, **kw: Any) -> None:
        f(*a, **kw)

    def callInThread(self, f: Callable[..., Any], *a: Any, **kw: Any) -> None:
        f(*a, **kw)


def make_server(tmp_path: Path, **static: Any) -> Server:
    config = StaticConfig(
        source=tmp_path / "mailsrv.toml",
        hostname=Domain.parse("mail.example.org"),
        data_dir=tmp_path / "data",
        listeners=(ListenerConfig(name="smtp", protocol="smtp", address="127.0.0.1", port=25, tls="none"),),
        **static,
    )
    server = Server.create(config, InlineReactor())
    assert server.credentials is not None
    server.credentials.hasher = PasswordHasher.for_tests()
    return server


def result(d: Deferred[T] | Coroutine[Any, Any, T] | T) -> T:
    """The value of a coroutine or Deferred that completes at once (raising its failure), or
    the value itself."""
    if inspect.iscoroutine(d):
        d = Deferred.fromCoroutine(d)
    if not isinstance(d, Deferred):
        return d  # type: ignore[return-value]
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, "the Deferred has not fired"
    if isinstance(out[0], Failure):
        out[0].raiseException()
    return out[0]  # type: ignore[no-any-return]
