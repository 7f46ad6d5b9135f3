"""When the store cannot do its job just now: index and file errors as `StoreUnavailable`.

SQLite reports a full disk, an I/O error, a locked or unreadable database as
`OperationalError` or a bare `DatabaseError` (a damaged file); message files as `OSError`.
None of these is the caller's fault and each may pass, so the store raises the retryable
`StoreUnavailable` instead (SMTP 451, IMAP NO [UNAVAILABLE]). Constraint violations and
programming errors (`IntegrityError`, `ProgrammingError`...) stay what they are: bugs.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

from twisted.python.failure import Failure

from mailsrv.store.interfaces import StoreUnavailable


def is_unavailability(e: BaseException) -> bool:
    if isinstance(e, OSError):
        return True
    return type(e) in (sqlite3.OperationalError, sqlite3.DatabaseError)


def as_unavailable(e: BaseException, what: str) -> BaseException:
    """`StoreUnavailable` (caused by `e`) for an unavailability, else `e` itself."""
    if isinstance(e, StoreUnavailable) or not is_unavailability(e):
        return e
    error = StoreUnavailable(f"the mail store cannot {what} just now, try again later")
    error.__cause__ = e
    return error


@contextlib.contextmanager
def unavailable_on_error(what: str) -> Iterator[None]:
    """Raises `StoreUnavailable` for index and file errors inside the block."""
    try:
        yield
    except Exception as e:
        converted = as_unavailable(e, what)
        if converted is e:
            raise
        raise converted from e


def failure_as_unavailable(failure: Failure, what: str) -> Failure:
    """An errback: the same conversion for a Deferred's failure."""
    value = failure.value
    if value is None:
        return failure
    converted = as_unavailable(value, what)
    return failure if converted is value else Failure(converted)  # type: ignore[no-untyped-call]
