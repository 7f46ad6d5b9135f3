"""Search return options of RFC 4731/5267 shared by SEARCH and SORT, and the live result
contexts of CONTEXT=SEARCH / CONTEXT=SORT (RFC 5267 §4).

`parse_return_options` reads ``RETURN (...)``: MIN MAX ALL COUNT SAVE (ESEARCH, ESORT,
SEARCHRES), CONTEXT (a hint, §4.2: accepted, nothing to do), UPDATE (§4.3) and
``PARTIAL low:high`` (§4.4: the results at those 1-based positions, answered
``PARTIAL (low:high set)`` or ``PARTIAL (low:high NIL)``). ALL and PARTIAL together are BAD.

UPDATE keeps the result of a UID SEARCH or UID SORT alive: `Contexts` (one per session)
re-evaluates the program on the messages that were added or whose flags changed, drops the
expunged ones, and tells the client with unsolicited
``* ESEARCH (TAG "t") UID REMOVEFROM (pos uids) ADDTO (pos uids)``:

- UID SEARCH contexts use position 0 (unordered: the client keeps mailbox order, §4.3.3);
- UID SORT contexts give each change at its position in sort order, one pair per message,
  in the order the client must apply them (§4.3.2), so the client's list stays exactly the
  server's (the server applies the same steps to its own copy).

What is not done, and said to the client as RFC 5267 §4.3.1 allows (``* NO [NOUPDATE
"tag"]``, the command itself completing with its other options): UPDATE on SEARCH/SORT
without UID (message numbers would have to be ordered against EXISTS/EXPUNGE), and more
than `MAX_CONTEXTS` contexts per session. Contexts end when the mailbox is unselected or
selected again and with CANCELUPDATE; a tag in use by a live context cannot start another
(BAD, §4.3).

Cost: each change costs one evaluation of the program over the changed messages only
(the whole view when the program addresses message numbers, whose meaning depends on it),
at most `MAX_CONTEXTS` times; changes are processed one batch at a time, in order.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred

from mailsrv.imapserver import responses
from mailsrv.imapserver.reader import Reader
from mailsrv.ops import search as engine
from mailsrv.ops import sort as sorting
from mailsrv.store.interfaces import Change, FlagsChanged, MessageAdded, MessagesExpunged

if TYPE_CHECKING:
    from mailsrv.imapserver.selected import SelectedMailbox
    from mailsrv.imapserver.session import Session

MAX_CONTEXTS = 5
RETURN_OPTIONS = frozenset({"MIN", "MAX", "ALL", "COUNT", "SAVE", "CONTEXT", "UPDATE", "PARTIAL"})


@dataclass
class ReturnOptions:
    names: list[str]  # upper-case, in the order given (PARTIAL without its range)
    partial: tuple[int, int] | None = None

    def wants(self, name: str) -> bool:
        return name in self.names

    @property
    def data(self) -> list[str]:
        """The options that ask for result data; an empty list means ALL (RFC 4731 §3.1)."""
        asked = [n for n in self.names if n in ("MIN", "MAX", "ALL", "COUNT", "PARTIAL")]
        return asked if self.names else ["ALL"]

    @property
    def silent(self) -> bool:
        """SAVE without data options gives no ESEARCH response (RFC 5182 §2.1)."""
        return "SAVE" in self.names and set(self.names) <= {"SAVE", "CONTEXT"}


def parse_return_options(r: Reader) -> ReturnOptions:
    """The parenthesised list after ``RETURN `` (RFC 4731 §3.1, RFC 5267 §4)."""
    out = ReturnOptions([])

    def option() -> None:
        name = r.keyword()
        if name not in RETURN_OPTIONS:
            raise r.error(f"unknown return option {name}")
        if name == "PARTIAL":
            r.sp()
            low = r.nz_number()
            r.expect(b":")
            high = r.nz_number()
            out.partial = (min(low, high), max(low, high))
        out.names.append(name)

    r.paren_list(option)
    if out.wants("ALL") and out.wants("PARTIAL"):
        raise r.error("ALL and PARTIAL cannot be used together (RFC 5267 §4.4)")
    if len(set(out.names)) != len(out.names):
        raise r.error("a return option is given twice")
    return out


def partial_item(numbers: list[int], window: tuple[int, int], *, ordered: bool) -> list[bytes]:
    """``PARTIAL (low:high set)``: the results at positions low..high of `numbers`."""
    low, high = window
    chosen = numbers[low - 1 : high]
    if not chosen:
        body = b"NIL"
    elif ordered:
        body = ordered_set(chosen)
    else:
        body = responses.uid_set(chosen)
    return [b"PARTIAL", b"(%d:%d " % (low, high) + body + b")"]


def ordered_set(numbers: list[int]) -> bytes:
    """A sequence set that keeps `numbers`' order: only ascending runs become ranges."""
    out: list[bytes] = []
    i = 0
    while i < len(numbers):
        j = i
        while j + 1 < len(numbers) and numbers[j + 1] == numbers[j] + 1:
            j += 1
        out.append(b"%d" % numbers[i] if i == j else b"%d:%d" % (numbers[i], numbers[j]))
        i = j + 1
    return b",".join(out)


# --- live contexts ---------------------------------------------------------------------------


@dataclass
class Context:
    tag: str
    program: engine.Key
    criteria: list[sorting.Criterion] | None  # None: a SEARCH context (unordered)
    selected: SelectedMailbox  # the selection it belongs to (identity)
    members: set[int] = field(default_factory=set)  # UIDs
    ordered: list[tuple[tuple[object, ...], int]] = field(default_factory=list)  # SORT: (key, uid)


def _uses_positions(program: engine.Key) -> bool:
    return engine.uses(program, engine.Positions)


class Contexts:
    """A session's update contexts and the changes not yet evaluated for them."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.live: dict[str, Context] = {}
        self._added: set[int] = set()  # UIDs added or with changed flags
        self._gone: set[int] = set()  # UIDs expunged
        self._running = False

    def __bool__(self) -> bool:
        return bool(self.live)

    def in_use(self, tag: str) -> bool:
        self._drop_stale()
        return tag in self.live

    def _drop_stale(self) -> None:
        sel = self.session.selected
        for tag in [t for t, c in self.live.items() if c.selected is not sel]:
            del self.live[tag]

    def start(
        self,
        tag: str,
        program: engine.Key,
        uids: list[int],
        *,
        uid_command: bool,
        criteria: list[sorting.Criterion] | None = None,
        ordered: list[sorting.Summary] | None = None,
    ) -> None:
        """Registers a context for the command `tag` whose result was `uids` (and, for
        SORT, `ordered`), or writes ``* NO [NOUPDATE "tag"]`` when it cannot."""
        self._drop_stale()
        refusal = None
        if not uid_command:
            refusal = "updates are given for UID SEARCH and UID SORT only"
        elif len(self.live) >= MAX_CONTEXTS:
            refusal = f"at most {MAX_CONTEXTS} update contexts per session"
        sel = self.session.selected
        if refusal is not None or sel is None:
            code = b"NOUPDATE " + responses.quoted(tag)
            self.session.write_untagged(b"NO", responses.resp_text(refusal or "no mailbox", code))
            return
        context = Context(tag, program, criteria, sel, set(uids))
        if criteria is not None and ordered is not None:
            context.ordered = [(sorting.sort_key(s, criteria), s.uid) for s in ordered]
        self.live[tag] = context

    def cancel(self, tags: list[str]) -> list[str]:
        """Ends the named contexts; returns the tags that named none."""
        self._drop_stale()
        unknown = [t for t in tags if t not in self.live]
        for t in tags:
            self.live.pop(t, None)
        return unknown

    # --- changes ---------------------------------------------------------------------------
    def changed(self, change: Change) -> None:
        """Called by the session for every change to its selected mailbox."""
        if not self.live:
            return
        if isinstance(change, (MessageAdded, FlagsChanged)):
            self._added.add(change.message.uid)
        elif isinstance(change, MessagesExpunged):
            self._gone.update(change.uids)
            self._added.difference_update(change.uids)
        else:
            return
        if not self._running:
            # Evaluated in a later reactor turn, not inside the store's notification.
            self._running = True
            self.session.callLater(0, self._start)

    def _start(self) -> None:
        d = Deferred.fromCoroutine(self._process())
        d.addErrback(lambda f: self.session.log.failure("updating search contexts", f))

    async def _process(self) -> None:
        try:
            while self._added or self._gone:
                added, gone = self._added, self._gone
                self._added, self._gone = set(), set()
                self._drop_stale()
                for context in list(self.live.values()):
                    await self._update(context, added, gone)
        finally:
            self._running = False

    async def _update(self, context: Context, added: set[int], gone: set[int]) -> None:
        session = self.session
        sel = context.selected
        matched: set[int] = set()
        if added:
            wanted = sorted(added)
            if _uses_positions(context.program):
                program: engine.Key = engine.And((context.program, engine.Uids(engine.ranges_of(wanted))))
                view = list(sel.uids)
            else:
                program, view = context.program, wanted
            scheduler = engine.ReactorScheduler(session.server.reactor)
            result = await engine.search(session.store, sel.mailbox_id, program, scheduler=scheduler, view=view)
            matched = {m.message.uid for m in result.matches}
        if context.tag not in self.live or session.selected is not sel:
            return  # cancelled or unselected meanwhile
        removed = sorted((gone | (added - matched)) & context.members)
        new = sorted(matched - context.members)
        if not removed and not new:
            return
        items: list[bytes] = [b"ESEARCH", b"(TAG " + responses.quoted(context.tag) + b")", b"UID"]
        if context.criteria is None:
            if removed:
                items += [b"REMOVEFROM", b"(0 " + responses.uid_set(removed) + b")"]
            if new:
                items += [b"ADDTO", b"(0 " + responses.uid_set(new) + b")"]
            context.members.difference_update(removed)
            context.members.update(new)
        else:
            items += await self._sorted_changes(context, removed, new)
            context.members = {uid for _, uid in context.ordered}
        if session.state == "logout" or len(items) == 3:
            return  # nothing may follow BYE (RFC 9051 §7.1.5)
        session.write_untagged(*items)
        session.flush_output()

    async def _sorted_changes(self, context: Context, removed: list[int], new: list[int]) -> list[bytes]:
        """REMOVEFROM/ADDTO pairs at their positions in sort order, applied to the server's
        copy of the list as they are written."""
        assert context.criteria is not None
        out: list[bytes] = []
        pairs: list[bytes] = []
        gone = set(removed)
        for i in range(len(context.ordered) - 1, -1, -1):  # from the end: positions stay valid
            if context.ordered[i][1] in gone:
                pairs.append(b"%d %d" % (i + 1, context.ordered[i][1]))
                del context.ordered[i]
        if pairs:
            out += [b"REMOVEFROM", b"(" + b" ".join(pairs) + b")"]
        if new:
            store, sel = self.session.store, context.selected
            summaries = await store.summaries(sel.mailbox_id, new)
            pairs = []
            for ms in summaries:
                key = sorting.sort_key(sorting.summarize(0, ms), context.criteria)
                at = bisect.bisect_left(context.ordered, (key, ms.uid))
                context.ordered.insert(at, (key, ms.uid))
                pairs.append(b"%d %d" % (at + 1, ms.uid))
            if pairs:
                out += [b"ADDTO", b"(" + b" ".join(pairs) + b")"]
        return out
