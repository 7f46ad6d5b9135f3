"""One admin operation as the control socket, the CLI and (later) the admin web API call it.

An `Operation` pairs a dotted name ("account.add") with an ops function and the
`msgspec.Struct` type of its request. Adapters never build requests by hand from JSON: they
decode the JSON object into `params` with msgspec (strict types, defaults for absent fields,
unknown fields ignored), call `fn(server, request)`, and encode what it returns with
`msgspec.to_builtins`. Each ops module lists its operations in a tuple named `OPERATIONS`;
`mailsrv.ops.catalog` gathers them.

`fn` may return its result, a Deferred, or a coroutine. With `in_thread=True` it runs in the
reactor's thread pool, so the dynamic config's fsync and rename never block the reactor; such
a function touches only thread-safe objects (`DynamicConfigStore` mutations take its lock),
never a store's SQLite connection.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from mailsrv.server import Server


class Done(msgspec.Struct):
    """The result of an operation that has nothing to report."""


@dataclass(frozen=True)
class Operation:
    name: str
    fn: Callable[[Server, Any], Any]
    params: type[msgspec.Struct]
    in_thread: bool = False
    summary: str = ""
