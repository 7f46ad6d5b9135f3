"""SORT and UID SORT (RFC 5256 §4, RFC 5957 DISPLAYFROM/DISPLAYTO) with ESORT return options
(RFC 5267 §3: MIN MAX ALL COUNT, and SAVE with SEARCHRES, RFC 5182) and CONTEXT=SORT's
(§4: CONTEXT, UPDATE, PARTIAL; see `contexts`), CANCELUPDATE (§4.3.5), and THREAD / UID
THREAD (RFC 5256 §4: ORDEREDSUBJECT, REFERENCES).

The IMAP syntax only: the search program is parsed by `search.parse_search` (same keys,
same bounds), ordering and threading are `mailsrv.ops.sort` and `mailsrv.ops.thread`.

Replies: ``* SORT n...`` (and ``(MODSEQ m)`` when the program used MODSEQ, RFC 7162
§3.1.5) or, with RETURN, ``* ESEARCH (TAG "t") [UID] ...`` where MIN and MAX are the first
and last message in sort order and ALL lists the messages in sort order (only ascending
runs are written as ranges, so the order survives); ``* THREAD (...)...``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from mailsrv.imapserver import responses
from mailsrv.imapserver.commands import SELECTED_ONLY, Command, Reply, command
from mailsrv.imapserver.contexts import ReturnOptions, ordered_set, parse_return_options, partial_item
from mailsrv.imapserver.errors import SyntaxError_, UserError
from mailsrv.imapserver.reader import Reader
from mailsrv.imapserver.search import SearchRequest, context_of, parse_search
from mailsrv.ops import errors as ops_errors
from mailsrv.ops import search as engine
from mailsrv.ops import sort as sorting
from mailsrv.ops import thread as threading

if TYPE_CHECKING:
    from mailsrv.imapserver.session import Session

CHARSETS = ("UTF-8", "US-ASCII")
MAX_CRITERIA = 20


def parse_criteria(r: Reader) -> list[sorting.Criterion]:
    """sort-criteria = "(" sort-criterion *(SP sort-criterion) ")", each [REVERSE SP] key."""
    out: list[sorting.Criterion] = []

    def criterion() -> None:
        if len(out) == MAX_CRITERIA:
            raise r.error(f"more than {MAX_CRITERIA} sort criteria")
        name = r.keyword()
        reverse = name == "REVERSE"
        if reverse:
            r.sp()
            name = r.keyword()
        key = name.lower()
        if key not in sorting.SORT_KEYS:
            raise r.error(f"unknown sort criterion {name}")
        out.append(sorting.Criterion(cast("sorting.SortKey", key), reverse))

    r.paren_list(criterion, allow_empty=False)
    return out


def _charset_and_program(session: Session, r: Reader) -> SearchRequest:
    charset = r.astring().upper()
    r.sp()
    request = parse_search(r, context_of(session))
    if charset not in CHARSETS:
        raise UserError("unsupported charset", "BADCHARSET (UTF-8 US-ASCII)")
    if request.uses_modseq:
        session.enable_condstore()
    return request


def _engine_errors(e: ops_errors.OpsError) -> SyntaxError_:
    return SyntaxError_(e.message)


@command("SORT", SELECTED_ONLY, uid=True)
async def sort(session: Session, cmd: Command) -> Reply | None:
    r = cmd.reader
    returns: ReturnOptions | None = None
    if r.take(b"RETURN "):
        returns = parse_return_options(r)
        r.sp()
    criteria = parse_criteria(r)
    r.sp()
    request = _charset_and_program(session, r)
    if returns is not None and returns.wants("UPDATE") and session.contexts.in_use(cmd.tag):
        raise SyntaxError_("tag in use by an update context (RFC 5267 §4.3)")
    sel = session.selected
    assert sel is not None
    try:
        ordered, result = await sorting.sort(
            session.store,
            sel.mailbox_id,
            request.program,
            criteria,
            scheduler=engine.ReactorScheduler(session.server.reactor),
            view=list(sel.uids),
        )
    except (ops_errors.LimitExceeded, ops_errors.InvalidInput) as e:
        raise _engine_errors(e) from e
    numbers = [s.uid if cmd.uid else s.position for s in ordered]
    with_modseq = request.uses_modseq and bool(ordered)
    if returns is None:
        parts = [b"SORT", *(b"%d" % n for n in numbers)]
        if with_modseq:
            parts.append(b"(MODSEQ %d)" % result.highest_modseq)
        session.write_untagged(*parts)
        return None
    uids = [s.uid for s in ordered]
    if returns.wants("SAVE"):
        # RFC 5182 §2.4: with MIN and/or MAX alone, only those messages are saved.
        minmax = returns.wants("MIN") or returns.wants("MAX")
        if uids and minmax and not (returns.wants("ALL") or returns.wants("COUNT")):
            picked = ({uids[0]} if returns.wants("MIN") else set()) | ({uids[-1]} if returns.wants("MAX") else set())
            session.saved_search = sorted(picked)
        else:
            session.saved_search = sorted(uids)
    if returns.wants("UPDATE"):
        session.contexts.start(cmd.tag, request.program, uids, uid_command=cmd.uid, criteria=criteria, ordered=ordered)
    if returns.silent:
        return None
    wanted = returns.data
    items: list[bytes] = [b"ESEARCH", b"(TAG " + responses.quoted(cmd.tag) + b")"]
    if cmd.uid:
        items.append(b"UID")
    if numbers:
        if "MIN" in wanted:
            items += [b"MIN", b"%d" % numbers[0]]
        if "MAX" in wanted:
            items += [b"MAX", b"%d" % numbers[-1]]
        if "ALL" in wanted:
            items += [b"ALL", ordered_set(numbers)]
    if "COUNT" in wanted:
        items += [b"COUNT", b"%d" % len(numbers)]
    if returns.partial is not None:
        items += partial_item(numbers, returns.partial, ordered=True)
    if with_modseq:
        items += [b"MODSEQ", b"%d" % result.highest_modseq]
    session.write_untagged(*items)
    return None


@command("CANCELUPDATE", SELECTED_ONLY)
async def cancelupdate(session: Session, cmd: Command) -> Reply | None:
    """RFC 5267 §4.3.5: ``CANCELUPDATE 1*(SP quoted)``, the tags of updating commands."""
    r = cmd.reader
    tags = [r.string()]
    while r.take(b" "):
        tags.append(r.string())
    r.end()
    unknown = session.contexts.cancel(tags)
    if unknown:
        raise SyntaxError_("no update context for " + " ".join(unknown))
    return None


@command("THREAD", SELECTED_ONLY, uid=True)
async def thread(session: Session, cmd: Command) -> Reply | None:
    r = cmd.reader
    name = r.keyword()
    algorithm = name.lower()
    if algorithm not in threading.ALGORITHMS:
        raise r.error(f"unknown threading algorithm {name}")
    r.sp()
    request = _charset_and_program(session, r)
    sel = session.selected
    assert sel is not None
    try:
        roots = await threading.thread(
            session.store,
            sel.mailbox_id,
            request.program,
            cast("threading.Algorithm", algorithm),
            scheduler=engine.ReactorScheduler(session.server.reactor),
            view=list(sel.uids),
        )
    except (ops_errors.LimitExceeded, ops_errors.InvalidInput) as e:
        raise _engine_errors(e) from e
    data = threading.thread_text(roots, uid=cmd.uid)
    session.write_untagged(b"THREAD", data) if data else session.write_untagged(b"THREAD")
    return None
