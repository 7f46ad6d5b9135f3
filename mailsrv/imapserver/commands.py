"""The command table: which handler serves which command in which session state.

Handler modules register with the `command` decorator at import time; `registry.py` lists
the modules to import. A handler is ``async def handler(session, cmd) -> Reply | None``:

- it parses its arguments from ``cmd.reader`` (positioned right after the command name
  and, when present, the space that follows it) and must consume them all
  (``cmd.reader.end()``);
- it writes untagged data with ``session.write_untagged(...)``;
- it returns None for ``tag OK <NAME> completed``, or a `Reply` for another OK text or
  response code (e.g. ``Reply("done", "APPENDUID 5 7")``);
- it raises `SyntaxError_`/`ParseError` (BAD), `UserError` (NO [code]) or `ServerError`.

The session serialises commands (the next one is not even read until this one answered),
flushes queued mailbox updates before the tagged reply (without EXPUNGE for FETCH, STORE and
SEARCH, RFC 9051 §7.5.1), and writes the tagged reply itself.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mailsrv.imapserver.reader import Reader

if TYPE_CHECKING:
    from mailsrv.imapserver.session import Session

# Session states (RFC 9051 §3).
NOT_AUTHENTICATED = "not-authenticated"
AUTHENTICATED = "authenticated"
SELECTED = "selected"
LOGOUT = "logout"

ANY_STATE = frozenset({NOT_AUTHENTICATED, AUTHENTICATED, SELECTED})
AUTHENTICATED_STATES = frozenset({AUTHENTICATED, SELECTED})
SELECTED_ONLY = frozenset({SELECTED})
NOT_AUTHENTICATED_ONLY = frozenset({NOT_AUTHENTICATED})

# Commands that must not cause untagged EXPUNGE/VANISHED in their answer unless UID-prefixed
# (RFC 9051 §7.5.1): an expunge would renumber the messages the client is addressing.
NO_EXPUNGE_COMMANDS = frozenset({"FETCH", "STORE", "SEARCH"})


@dataclass
class Command:
    tag: str
    name: str  # upper-case, without the UID prefix
    uid: bool  # prefixed with "UID"
    reader: Reader


@dataclass(frozen=True)
class Reply:
    """The tagged OK's text and optional response code."""

    text: str = "completed"
    code: str | None = None


Handler = Callable[["Session", Command], Coroutine[Any, Any, Reply | None]]


@dataclass(frozen=True)
class CommandSpec:
    name: str
    states: frozenset[str]
    handler: Handler
    uid: bool  # may be prefixed with UID (FETCH, STORE, SEARCH, COPY, MOVE, EXPUNGE)


# Filled once at import time by the decorator; read-only afterwards.
COMMANDS: dict[str, CommandSpec] = {}


def command(name: str, states: frozenset[str], *, uid: bool = False) -> Callable[[Handler], Handler]:
    """Registers `handler` for command `name` (upper-case) in `states`."""

    def register(handler: Handler) -> Handler:
        if name in COMMANDS:
            raise RuntimeError(f"IMAP command {name} registered twice")
        COMMANDS[name] = CommandSpec(name, states, handler, uid)
        return handler

    return register
