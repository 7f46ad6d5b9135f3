"""The webmail search box: a query string with operators, parsed into the one search
engine's program (`mailsrv.ops.search`).

Syntax (words separated by white space; "quoted phrases" keep their spaces; a leading "-"
negates a term; terms are all required):

    from:ADDR  to:ADDR (To or Cc)  cc:ADDR  subject:TEXT  has:attachment
    is:unread is:read is:flagged is:unflagged is:answered is:draft
    before:YYYY-MM-DD (sent before that day)  after:YYYY-MM-DD (sent on or after it)
    larger:SIZE smaller:SIZE (bytes, or with k/M/G: 10k, 2M)
    in:MAILBOX (search that mailbox; in:all or in:anywhere: every mailbox)
    label:KEYWORD (a keyword is set)
    anything else: the word in the subject, From, To, Cc or the text

An unknown operator (`foo:bar`) is searched as plain text, as a user typing a time "10:30"
expects. Limits: `MAX_QUERY` characters and `MAX_TERMS` terms (LimitExceeded), well inside
the engine's own program limits.
"""

from __future__ import annotations

import datetime
import re

import msgspec

from mailsrv.ops import search as engine
from mailsrv.ops.errors import InvalidInput, LimitExceeded

MAX_QUERY = 2000
MAX_TERMS = 50
ALL_MAILBOXES = ("all", "anywhere", "*")

_TERM = re.compile(r'(-?)(?:([A-Za-z]+):)?(?:"([^"]*)"?|(\S+))')
_SIZE = re.compile(r"(\d{1,15})\s*([kmg]?)b?", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
_IS = {
    "unread": engine.Flag("\\Seen", present=False),
    "read": engine.Flag("\\Seen"),
    "seen": engine.Flag("\\Seen"),
    "unseen": engine.Flag("\\Seen", present=False),
    "flagged": engine.Flag("\\Flagged"),
    "starred": engine.Flag("\\Flagged"),
    "unflagged": engine.Flag("\\Flagged", present=False),
    "answered": engine.Flag("\\Answered"),
    "replied": engine.Flag("\\Answered"),
    "draft": engine.Flag("\\Draft"),
}


class ParsedQuery(msgspec.Struct, frozen=True):
    """The program to run and where: `mailbox` is the in: operand ("" when not given: the
    caller's current mailbox), `all_mailboxes` for in:all."""

    program: engine.Key
    mailbox: str = ""
    all_mailboxes: bool = False


def _day(text: str, field: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{field}: a date as YYYY-MM-DD", field="query") from None


def _size(text: str, field: str) -> int:
    m = _SIZE.fullmatch(text)
    if m is None:
        raise InvalidInput(f"{field}: a size such as 500k or 2M", field="query")
    return int(m.group(1)) * _UNITS[m.group(2).lower()]


def plain_text(word: str) -> engine.Key:
    """A word without operator: in the subject, the From/To/Cc addresses or the text.
    Envelope keys come first, so a match there spares reading the message file."""
    return engine.Or(
        (
            engine.Subject(word),
            engine.Address("from", word),
            engine.Address("to", word),
            engine.Address("cc", word),
            engine.Body(word),
        )
    )


def _term(operator: str, value: str) -> engine.Key | None:
    """The key of one operator term; None for in: (handled by the caller)."""
    op = operator.lower()
    if op == "from":
        return engine.Address("from", value)
    if op == "to":
        return engine.Or((engine.Address("to", value), engine.Address("cc", value)))
    if op in ("cc", "bcc"):
        return engine.Address(op, value)  # type: ignore[arg-type]
    if op == "subject":
        return engine.Subject(value)
    if op == "has":
        if value.lower() in ("attachment", "attachments"):
            return engine.HasAttachment()
        raise InvalidInput("has: knows only has:attachment", field="query")
    if op == "is":
        key = _IS.get(value.lower())
        if key is None:
            raise InvalidInput(f"is:{value}: use one of {', '.join(sorted(_IS))}", field="query")
        return key
    if op in ("label", "keyword"):
        return engine.Flag(value)
    if op in ("before", "after", "on"):
        relation = {"before": "before", "after": "since", "on": "on"}[op]
        return engine.Date("sent", relation, _day(value, op))  # type: ignore[arg-type]
    if op in ("larger", "smaller"):
        return engine.Size(op, _size(value, op))  # type: ignore[arg-type]
    return plain_text(f"{operator}:{value}")


def parse_query(query: str) -> ParsedQuery:
    """The search for `query` (see the module docstring). An empty query matches every
    message. Raises InvalidInput (a bad date, size or is: value), LimitExceeded."""
    if len(query) > MAX_QUERY:
        raise LimitExceeded(f"a search has at most {MAX_QUERY} characters")
    keys: list[engine.Key] = []
    mailbox = ""
    all_mailboxes = False
    for m in _TERM.finditer(query):
        negate, operator, quoted, bare = m.group(1), m.group(2) or "", m.group(3), m.group(4)
        value = quoted if quoted is not None else bare
        if not value:
            continue
        if len(keys) >= MAX_TERMS:
            raise LimitExceeded(f"a search has at most {MAX_TERMS} terms")
        if operator.lower() == "in" and not negate:
            all_mailboxes = value.lower() in ALL_MAILBOXES
            mailbox = "" if all_mailboxes else value
            continue
        key = _term(operator, value) if operator else plain_text(value)
        if key is None:
            continue
        keys.append(engine.Not(key) if negate else key)
    if not keys:
        program: engine.Key = engine.All()
    elif len(keys) == 1:
        program = keys[0]
    else:
        program = engine.And(tuple(keys))
    return ParsedQuery(program, mailbox, all_mailboxes)
