"""The three kinds of command errors (see the package notes in `mailsrv.imapserver`).

Handlers raise one of these; `Session.dispatch` is the one place that catches them and
answers:

- `SyntaxError_` (and its `ParseError`): the command is malformed → tagged BAD.
- `UserError`: well-formed but refused (no such mailbox, over quota, wrong state...) →
  tagged NO, with the optional response code (RFC 9051 §7.1), e.g. ``NO [TRYCREATE] ...``.
- `ServerError`: something broke on our side → tagged NO [SERVERBUG], the detail is logged,
  never shown to the peer.

Any other exception escaping a handler is treated like a `ServerError`.
"""

from __future__ import annotations


class CommandError(Exception):
    """Base class: `text` is what the peer sees after the status word."""

    def __init__(self, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.code = code


class SyntaxError_(CommandError):  # trailing underscore: do not shadow the builtin
    """A malformed command: answered with BAD (RFC 9051 §7.1.3)."""


class ParseError(SyntaxError_):
    """Raised by `mailsrv.imapserver.reader.Reader` at the byte where parsing failed."""

    def __init__(self, text: str, position: int = -1) -> None:
        super().__init__(text)
        self.position = position


class UserError(CommandError):
    """A refused command: answered with NO and the response code, when given.

    `code` is the bracketed response code without brackets, e.g. "TRYCREATE",
    "OVERQUOTA", "NONEXISTENT", "ALREADYEXISTS", "CANNOT", "TOOBIG", "UNAVAILABLE"."""

    def __init__(self, text: str, code: str | None = None) -> None:
        super().__init__(text, code)


class ServerError(CommandError):
    """Our fault: answered with NO [SERVERBUG]; `detail` (and the traceback) go to the log."""

    def __init__(self, detail: str) -> None:
        super().__init__("internal server error", "SERVERBUG")
        self.detail = detail


def from_store_error(exc: Exception, *, trycreate: bool = False) -> CommandError:
    """The answer to a store exception (`mailsrv.store.interfaces`). `trycreate` for the
    target of APPEND/COPY/MOVE (RFC 9051 §7.1: NO [TRYCREATE] when it does not exist)."""
    from mailsrv.store import interfaces as si

    if isinstance(exc, si.MailboxNotFound):
        return UserError(str(exc) or "no such mailbox", "TRYCREATE" if trycreate else "NONEXISTENT")
    if isinstance(exc, si.MailboxExists):
        return UserError(str(exc) or "mailbox exists", "ALREADYEXISTS")
    if isinstance(exc, si.MailboxNameInvalid):
        return UserError(str(exc) or "invalid mailbox name", "CANNOT")
    if isinstance(exc, si.OverQuota):
        return UserError(str(exc) or "over quota", "OVERQUOTA")
    if isinstance(exc, si.MailboxNotEmptyOfChildren):
        return UserError(str(exc) or "mailbox has children", "HASCHILDREN")
    if isinstance(exc, si.StoreUnavailable):  # RFC 5530 §3: a subsystem is down, try later
        return UserError(str(exc) or "try again later", "UNAVAILABLE")
    if isinstance(exc, si.StoreError):
        return UserError(str(exc) or "refused", "CANNOT")
    return ServerError(repr(exc))


def from_ops_error(exc: Exception, *, trycreate: bool = False) -> CommandError:
    """The answer to an application-layer error (`mailsrv.ops.errors`); `trycreate` as for
    `from_store_error`."""
    from mailsrv.ops import errors as oe
    from mailsrv.ops.mail import HasChildren

    if isinstance(exc, oe.NotFound):
        return UserError(exc.message, "TRYCREATE" if trycreate else "NONEXISTENT")
    if isinstance(exc, oe.Exists):
        return UserError(exc.message, "ALREADYEXISTS")
    if isinstance(exc, oe.LimitExceeded):
        return UserError(exc.message, "OVERQUOTA")
    if isinstance(exc, HasChildren):
        return UserError(exc.message, "HASCHILDREN")
    if isinstance(exc, oe.TemporaryFailure):  # RFC 5530 §3
        return UserError(exc.message, "UNAVAILABLE")
    if isinstance(exc, oe.UserError):
        return UserError(exc.message, "CANNOT")
    return ServerError(repr(exc))
