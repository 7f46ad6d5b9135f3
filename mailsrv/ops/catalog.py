"""Every admin operation by name, and how an adapter runs one from a JSON object.

The control socket (`mailsrv.control`) and the offline CLI (`mailsrv.cli`) call `run`; the
admin web API will too. Adding an operation: write the typed function and its request
Struct in its ops module, list it in that module's `OPERATIONS`, and make sure the module
is in `_MODULES` below.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

import msgspec
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.threads import deferToThreadPool

from mailsrv.ops import (
    accounts,
    adminauth,
    aliases,
    apitokens,
    dnscheck,
    domains,
    events,
    junk,
    login,
    queue,
    reports,
    rules,
    serverinfo,
    suppressions,
    tlspubkeys,
    webhooks,
)
from mailsrv.ops.errors import InvalidInput, NotFound
from mailsrv.ops.operation import Operation

if TYPE_CHECKING:
    from mailsrv.server import Server

_MODULES = (
    accounts,
    apitokens,
    adminauth,
    domains,
    dnscheck,
    reports,
    aliases,
    rules,
    tlspubkeys,
    junk,
    login,
    queue,
    events,
    suppressions,
    serverinfo,
    webhooks,
)


def _index(*groups: tuple[Operation, ...]) -> dict[str, Operation]:
    table: dict[str, Operation] = {}
    for group in groups:
        for op in group:
            if op.name in table:
                raise ValueError(f"operation {op.name} listed twice")
            table[op.name] = op
    return table


OPERATIONS: dict[str, Operation] = _index(*(m.OPERATIONS for m in _MODULES))


def decode(op: Operation, args: dict[str, Any]) -> msgspec.Struct:
    """The typed request for `args`; InvalidInput naming the field when it does not fit."""
    try:
        return msgspec.convert(args, op.params)
    except msgspec.ValidationError as e:
        raise InvalidInput(f"{op.name}: {e}") from None


def run(server: Server, name: str, args: dict[str, Any]) -> Deferred[Any]:
    """Runs operation `name` on JSON-shaped `args`; the Deferred fires with a JSON-shaped result
    or fails with an OpsError (a refusal to show the user) or anything else (a bug)."""
    op = OPERATIONS.get(name)
    if op is None:
        raise NotFound(f"unknown command: {name}")
    request = decode(op, args)
    if op.in_thread:
        reactor: Any = server.reactor
        d: Deferred[Any] = deferToThreadPool(reactor, reactor.getThreadPool(), op.fn, server, request)
    else:
        d = maybeDeferred(_call, op, server, request)
    return d.addCallback(msgspec.to_builtins)


def _call(op: Operation, server: Server, request: msgspec.Struct) -> Any:
    result = op.fn(server, request)
    if inspect.iscoroutine(result):
        return Deferred.fromCoroutine(result)
    return result
