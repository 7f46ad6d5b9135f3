"""SEARCH and UID SEARCH (RFC 9051 §6.4.4) with ESEARCH (RFC 4731), SEARCHRES (RFC 5182)
and MODSEQ (RFC 7162 §3.1.5): the IMAP syntax of the search engine in `mailsrv.ops.search`.

`parse_search` turns the command's arguments into the engine's typed program, resolving
what only the session knows: `*` (the largest UID or message number in the client's view),
`$` (the saved result) and RECENT/NEW/OLD (the session's \\Recent set). Its size is bounded
while parsing (`MAX_KEYS` keys, `MAX_DEPTH` levels: BAD beyond). The handler runs the engine
over the session's view and writes SEARCH or ESEARCH responses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mailsrv.imapserver import responses
from mailsrv.imapserver.commands import SELECTED_ONLY, Command, Reply, command
from mailsrv.imapserver.contexts import ReturnOptions, parse_return_options, partial_item
from mailsrv.imapserver.errors import SyntaxError_, UserError
from mailsrv.imapserver.reader import Reader
from mailsrv.imapserver.sequence import STAR, SequenceSet, is_sequence_set_start, parse_sequence_set
from mailsrv.ops import errors as ops_errors
from mailsrv.ops import search as engine

if TYPE_CHECKING:
    from mailsrv.imapserver.session import Session

MAX_DEPTH = engine.MAX_DEPTH  # nesting of NOT/OR/parentheses
MAX_KEYS = engine.MAX_KEYS


@dataclass(frozen=True)
class SearchContext:
    """What the session's view contributes to a program: the largest message number and
    UID (for `*`), the saved result (`$`, RFC 5182) and the \\Recent UIDs (rev1)."""

    count: int = 0
    max_uid: int = 0
    saved: frozenset[int] = frozenset()
    recent: frozenset[int] = frozenset()


@dataclass
class _Parser:
    reader: Reader
    context: SearchContext
    keys: int = 0

    def count(self) -> None:
        self.keys += 1
        if self.keys > MAX_KEYS:
            raise self.reader.error(f"search program has more than {MAX_KEYS} keys")

    def text(self) -> str:
        return self.reader.astring_bytes().decode("utf-8", "replace")

    def numbers(self, seqset: SequenceSet, largest: int) -> tuple[tuple[int, int], ...]:
        return tuple((largest if lo == STAR else lo, largest if hi == STAR else hi) for lo, hi in seqset.ranges)

    def key(self, depth: int = 0) -> engine.Key:
        reader = self.reader
        if depth > MAX_DEPTH:
            raise reader.error("search program nested too deeply")
        self.count()
        if reader.peek() == b"(":
            keys = reader.paren_list(lambda: self.key(depth + 1), allow_empty=False)
            return engine.And(tuple(keys)) if len(keys) > 1 else keys[0]
        if is_sequence_set_start(reader):
            seqset = parse_sequence_set(reader)
            if seqset.saved:
                return engine.Uids(engine.ranges_of(self.context.saved))
            return engine.Positions(self.numbers(seqset, self.context.count))
        name = reader.keyword()
        if name == "ALL":
            return engine.All()
        if name in _FLAG_KEYS:
            flag, present = _FLAG_KEYS[name]
            return engine.Flag(flag, present)
        if name in ("RECENT", "NEW", "OLD"):
            recent = engine.Uids(engine.ranges_of(self.context.recent))
            if name == "RECENT":
                return recent
            if name == "NEW":
                return engine.And((recent, engine.Flag("\\Seen", present=False)))
            return engine.Not(recent)
        reader.sp()
        if name in _ADDRESS_KEYS:
            return engine.Address(_ADDRESS_KEYS[name], self.text())
        if name == "SUBJECT":
            return engine.Subject(self.text())
        if name == "BODY":
            return engine.Body(self.text())
        if name == "TEXT":
            return engine.Text(self.text())
        if name in ("KEYWORD", "UNKEYWORD"):
            return engine.Flag(reader.flag(), present=name == "KEYWORD")
        if name in _DATE_KEYS:
            date_field, relation = _DATE_KEYS[name]
            return engine.Date(date_field, relation, reader.date())
        if name in ("LARGER", "SMALLER"):
            return engine.Size("larger" if name == "LARGER" else "smaller", reader.number64())
        if name == "UID":
            seqset = parse_sequence_set(reader)
            if seqset.saved:
                return engine.Uids(engine.ranges_of(self.context.saved))
            return engine.Uids(self.numbers(seqset, self.context.max_uid))
        if name == "HEADER":
            field_name = reader.astring()
            reader.sp()
            return engine.Header(field_name, self.text())
        if name == "NOT":
            return engine.Not(self.key(depth + 1))
        if name == "OR":
            a = self.key(depth + 1)
            reader.sp()
            return engine.Or((a, self.key(depth + 1)))
        if name == "MODSEQ":
            # Optional entry name and type (RFC 7162 §3.1.5): accepted and ignored, we keep
            # one modseq per message.
            if reader.peek() == b'"':
                reader.string()
                reader.sp()
                reader.keyword()
                reader.sp()
            return engine.ModSeq(reader.number64())
        raise reader.error(f"unknown search key {name}")


_FLAG_KEYS = {
    "ANSWERED": ("\\Answered", True),
    "DELETED": ("\\Deleted", True),
    "DRAFT": ("\\Draft", True),
    "FLAGGED": ("\\Flagged", True),
    "SEEN": ("\\Seen", True),
    "UNANSWERED": ("\\Answered", False),
    "UNDELETED": ("\\Deleted", False),
    "UNDRAFT": ("\\Draft", False),
    "UNFLAGGED": ("\\Flagged", False),
    "UNSEEN": ("\\Seen", False),
}
_ADDRESS_KEYS: dict[str, engine.AddressField] = {"FROM": "from", "TO": "to", "CC": "cc", "BCC": "bcc"}
_DATE_KEYS: dict[str, tuple[engine.DateField, engine.DateRelation]] = {
    "BEFORE": ("received", "before"),
    "ON": ("received", "on"),
    "SINCE": ("received", "since"),
    "SENTBEFORE": ("sent", "before"),
    "SENTON": ("sent", "on"),
    "SENTSINCE": ("sent", "since"),
}


@dataclass
class SearchRequest:
    program: engine.Key
    return_options: list[str] | None  # None: no RETURN (plain SEARCH response in rev1)
    charset: str | None = None
    uses_modseq: bool = field(default=False)
    partial: tuple[int, int] | None = None  # RETURN (PARTIAL low:high), RFC 5267 §4.4


def parse_search(reader: Reader, context: SearchContext | None = None) -> SearchRequest:
    """The program of a SEARCH command's arguments (everything after "SEARCH ")."""
    parser = _Parser(reader, context or SearchContext())
    return_options: list[str] | None = None
    partial = None
    charset = None
    if reader.take(b"RETURN "):
        returns = parse_return_options(reader)  # RFC 4731 and RFC 5267 §4 options
        return_options, partial = returns.names, returns.partial
        reader.sp()
    if reader.take(b"CHARSET "):
        charset = reader.astring().upper()
        reader.sp()
    keys = [parser.key()]
    while reader.take(b" "):
        keys.append(parser.key())
    reader.end()
    program = engine.And(tuple(keys)) if len(keys) > 1 else keys[0]
    request = SearchRequest(program, return_options, charset, engine.uses(program, engine.ModSeq))
    request.partial = partial
    return request


async def run_search(session: Session, request: SearchRequest) -> engine.SearchResult:
    """The engine over the session's view (message numbers are positions in `sel.uids`)."""
    sel = session.selected
    assert sel is not None
    scheduler = engine.ReactorScheduler(session.server.reactor)
    try:
        return await engine.search(
            session.store, sel.mailbox_id, request.program, scheduler=scheduler, view=list(sel.uids)
        )
    except ops_errors.LimitExceeded as e:
        raise SyntaxError_(e.message) from e
    except ops_errors.InvalidInput as e:
        raise SyntaxError_(e.message) from e


def context_of(session: Session) -> SearchContext:
    sel = session.selected
    assert sel is not None
    return SearchContext(
        count=sel.count,
        max_uid=sel.max_uid,
        saved=frozenset(session.saved_search),
        recent=frozenset(sel.recent),
    )


@command("SEARCH", SELECTED_ONLY, uid=True)
async def search(session: Session, cmd: Command) -> Reply | None:
    request = parse_search(cmd.reader, context_of(session))
    returns = ReturnOptions(request.return_options or [], request.partial)
    if returns.wants("UPDATE") and session.contexts.in_use(cmd.tag):
        raise SyntaxError_("tag in use by an update context (RFC 5267 §4.3)")
    if request.charset is not None and request.charset not in ("UTF-8", "US-ASCII"):
        raise UserError("unsupported charset", "BADCHARSET (UTF-8 US-ASCII)")
    if request.uses_modseq:
        session.enable_condstore()
    result = await run_search(session, request)
    matched = result.matches
    # RFC 7162 §3.1.5: the highest modseq is reported whenever the program has MODSEQ.
    with_modseq = request.uses_modseq and bool(matched)
    numbers = [m.message.uid if cmd.uid else m.position for m in matched]
    uids = [m.message.uid for m in matched]
    options = request.return_options
    if options is not None and "SAVE" in options:
        if uids and ("MIN" in options or "MAX" in options) and not ("ALL" in options or "COUNT" in options):
            # RFC 5182 §2.4: SAVE with MIN and/or MAX alone saves just those messages.
            picked = {uids[0]} if "MIN" in options else set()
            if "MAX" in options:
                picked.add(uids[-1])
            session.saved_search = sorted(picked)
        else:
            session.saved_search = uids
    if options is None and not session.rev2:
        parts = [b"SEARCH", *(b"%d" % n for n in numbers)]
        if with_modseq:
            parts.append(b"(MODSEQ %d)" % result.highest_modseq)
        session.write_untagged(*parts)
        return None
    if returns.wants("UPDATE"):
        session.contexts.start(cmd.tag, request.program, uids, uid_command=cmd.uid)
    if returns.silent:
        return None  # RFC 5182 §2.1: SAVE alone returns no ESEARCH
    wanted = returns.data
    items: list[bytes] = [b"ESEARCH", b"(TAG " + responses.quoted(cmd.tag) + b")"]
    if cmd.uid:
        items.append(b"UID")
    if numbers:
        if "MIN" in wanted:
            items += [b"MIN", b"%d" % min(numbers)]
        if "MAX" in wanted:
            items += [b"MAX", b"%d" % max(numbers)]
        if "ALL" in wanted:
            items += [b"ALL", responses.uid_set(sorted(numbers))]
    if "COUNT" in wanted:
        items += [b"COUNT", b"%d" % len(numbers)]
    if returns.partial is not None:
        items += partial_item(numbers, returns.partial, ordered=False)
    if with_modseq:
        items += [b"MODSEQ", b"%d" % _esearch_modseq(matched, wanted, result.highest_modseq)]
    session.write_untagged(*items)
    return None


def _esearch_modseq(matched: Sequence[engine.Match], wanted: list[str], highest: int) -> int:
    """RFC 7162 §3.1.5: with MIN and/or MAX alone (no ALL, COUNT or PARTIAL), the MODSEQ of
    the message(s) returned; otherwise the highest of all matches."""
    if not matched or not wanted or not set(wanted) <= {"MIN", "MAX"}:
        return highest
    ends = sorted(matched, key=lambda m: m.message.uid)
    returned = []
    if "MIN" in wanted:
        returned.append(ends[0])
    if "MAX" in wanted:
        returned.append(ends[-1])
    return max(m.message.modseq for m in returned)
