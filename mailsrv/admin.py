"""Administrative commands as the control socket and the offline CLI run them.

The operations themselves are typed ops functions, listed by name in
`mailsrv.ops.catalog.OPERATIONS` (request Structs decoded from the JSON `args`). The daemon
runs them when the CLI asks over the control socket, so the daemon stays the only writer;
when no daemon runs, the CLI builds a `Server` on the same files and runs the same function.

`COMMANDS` is the older registry of `(server, args) -> JSON` handlers; every command has
moved to ops (the queue's last, to `mailsrv.ops.queue`), so it is empty and `run` goes to the
catalog. New commands go to ops, never here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure

from mailsrv.config.dynamic import DynamicConfigError
from mailsrv.ops import catalog
from mailsrv.server import Server

JSON = Any
Handler = Callable[[Server, dict[str, Any]], "JSON | Deferred[JSON]"]
COMMANDS: dict[str, Handler] = {}
THREADED: set[str] = set()


class AdminError(Exception):
    """A request that cannot be done; `str()` is shown to the admin as is."""


def command(name: str, *, in_thread: bool = False) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        COMMANDS[name] = fn
        if in_thread:
            THREADED.add(name)
        return fn

    return register


def _arg(args: dict[str, Any], name: str) -> str:
    value = args.get(name)
    if not isinstance(value, str) or not value:
        raise AdminError(f"missing argument: {name}")
    return value


def _as_admin_error(failure: Failure) -> JSON:
    if isinstance(failure.value, DynamicConfigError):
        raise AdminError(str(failure.value))
    return failure


def run(server: Server, name: str, args: dict[str, Any]) -> Deferred[JSON]:
    """Runs a command; failures are OpsError or AdminError (a refusal for the user) or anything
    else (a bug)."""
    handler = COMMANDS.get(name)
    if handler is None:
        return catalog.run(server, name, args)
    if name in THREADED:
        reactor: Any = server.reactor
        threaded: Deferred[JSON] = deferToThreadPool(reactor, reactor.getThreadPool(), handler, server, args)
        return threaded.addErrback(_as_admin_error)
    try:
        result = handler(server, args)
    except DynamicConfigError as e:
        raise AdminError(str(e)) from None
    if isinstance(result, Deferred):
        return result
    return succeed(result)
