"""A test guard for issue 10's rule: web request paths read the store only through its
Deferred calls (`mailboxes_async`, `part_trees`, `read_async`, ...), never through the
synchronous reads, which run index queries or read message files on the reactor thread (the
IMAP session keeps them for its per-command hot paths).

`install()` wraps the synchronous reads of the SQLite store: a call made on the reactor thread,
from outside the store, with a web request path on the stack (the web adapters and the ops
modules they use, `WEB_PATHS`) raises `SyncStoreRead` and logs a `VIOLATION_MARK` line. The
store's own Deferred forms call the synchronous ones internally: that is allowed. Work in a pool
thread (an export writing its archive) is not on the reactor and is allowed too.

    python -m tests.storeguard --log-format=text mailsrv --config ...   # the daemon, guarded

`guarded_daemon(...)` (tests/web/webmail/harness.py and others use it) starts the daemon that
way; `assert_no_violation(daemon)` checks its log.
"""

from __future__ import annotations

import functools
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from twisted.python import threadable

SYNC_READS = (
    "mailboxes",
    "mailbox",
    "mailbox_by_id",
    "subscriptions",
    "messages",
    "message",
    "changes_since",
    "read",
    "part_tree",
    "usage",
)
WEB_PATHS = (
    "mailsrv.web.",
    "mailsrv.ops.webmail",
    "mailsrv.ops.messages",
    "mailsrv.ops.importexport",
    "mailsrv.ops.compose",
    "mailsrv.ops.accountself",
)
INLINE_POOL = "tests.ops.world"  # its thread pool runs work at once, on the calling thread
VIOLATION_MARK = "SYNC STORE READ ON THE REACTOR"


class SyncStoreRead(AssertionError):
    """A web request path called a synchronous store read on the reactor thread."""


def _module(frame: FrameType) -> str:
    return str(frame.f_globals.get("__name__", ""))


def violation(method: str, frame: FrameType | None, on_reactor: Callable[[], bool]) -> str | None:
    """What is wrong with a call of `method` from `frame` (the caller's), or None."""
    if not on_reactor():
        return None
    caller = frame
    while caller is not None and _module(caller).startswith(("twisted.", "tests.storeguard", INLINE_POOL)):
        if _module(caller) == INLINE_POOL:
            return None  # pool work, run inline by tests/ops/world.py: another thread in the daemon
        caller = caller.f_back  # maybeDeferred and friends between the store and its own caller
    if caller is None or _module(caller).startswith("mailsrv.store"):
        return None  # the store's Deferred forms use the synchronous reads themselves
    f: FrameType | None = frame
    while f is not None:
        if _module(f).startswith(WEB_PATHS):
            where = f"{_module(caller)}:{caller.f_lineno} ({caller.f_code.co_name})"
            return f"{VIOLATION_MARK}: {method}() from {where} on the path of {_module(f)}"
        f = f.f_back
    return None


def _reactor_thread() -> bool:
    return threadable.isInIOThread()


def _wrap(cls: type, name: str, on_reactor: Callable[[], bool], seen: list[str]) -> Callable[..., Any]:
    original = getattr(cls, name)

    @functools.wraps(original)
    def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
        problem = violation(name, sys._getframe(1), on_reactor)
        if problem is not None:
            seen.append(problem)
            print(problem, file=sys.stderr, flush=True)
            raise SyncStoreRead(problem)
        return original(self, *args, **kwargs)

    guarded.__wrapped_original__ = original  # type: ignore[attr-defined]
    return guarded


def _store_class() -> type:
    from mailsrv.store.account import SQLiteAccountStore

    return SQLiteAccountStore


def install(on_reactor: Callable[[], bool] = _reactor_thread) -> list[str]:
    """Guards the synchronous reads for the rest of the process; returns the list that
    collects violations."""
    seen: list[str] = []
    cls = _store_class()
    for name in SYNC_READS:
        setattr(cls, name, _wrap(cls, name, on_reactor, seen))
    return seen


@contextmanager
def guarded(thread: int | None = None) -> Iterator[list[str]]:
    """`install` for a block of an in-process test whose "reactor" is the thread `thread`
    (default: the calling one; tests/ops run the reactor and the pools inline on it)."""
    ident = threading.get_ident() if thread is None else thread
    cls = _store_class()
    originals = {name: cls.__dict__.get(name) for name in SYNC_READS}
    seen: list[str] = []
    for name in SYNC_READS:
        setattr(cls, name, _wrap(cls, name, lambda: threading.get_ident() == ident, seen))
    try:
        yield seen
    finally:
        for name, original in originals.items():
            if original is None:
                delattr(cls, name)
            else:
                setattr(cls, name, original)


def guard_test(case: Any) -> list[str]:
    """`guarded()` for the rest of a trial TestCase's test (call from setUp)."""
    block = guarded()
    seen = block.__enter__()
    case.addCleanup(block.__exit__, None, None, None)
    return seen


def guarded_daemon(directory: Path, **options: Any) -> Any:
    """`tests.daemon.start_daemon` with the guard installed in the daemon."""
    from tests.daemon import write_config

    daemon = write_config(directory, **options)
    daemon.python_args = ("-m", "tests.storeguard")
    daemon.start()
    return daemon


def assert_no_violation(daemon: Any) -> None:
    lines = [line for line in daemon.log().splitlines() if VIOLATION_MARK in line]
    assert not lines, "\n".join(lines)


if __name__ == "__main__":
    from twisted.application.twist._twist import Twist

    install()
    Twist.main([sys.argv[0], *sys.argv[1:]])
