"""Search return options of RFC 4731/5267 shared by SEARCH and SORT, and the live result
contexts of CONTEXT=SEARCH / CONTEXT=SORT (RFC 5267 §4).

`parse_return_options` reads ``RETURN (...)``: MIN MAX ALL COUNT SAVE (ESEARCH, ESORT,
SEARCHRES), CONTEXT (a hint, §4.2: accepted, nothing to do), UPDATE (§4.3) and
``PARTIAL low:high`` (§4.4: the results at those 1-based positions, answered
``PARTIAL (low:high set)`` or ``PARTIAL (low:high NIL)``). ALL and PARTIAL together are BAD.

UPDATE keeps the result of a SEARCH or SORT alive: `Contexts` (one per session)
re-evaluates the program on the messages that were added or whose flags changed, drops the
expunged ones, and tells the client with unsolicited
``* ESEARCH (TAG "t") UID REMOVEFROM (pos uids) ADDTO (pos uids)``:

- SEARCH contexts use position 0 (unordered: the client keeps mailbox order, §4.3.3);
- SORT contexts give each change at its position in sort order, one pair per message,
  in the order the client must apply them (§4.3.2), so the client's list stays exactly the
  server's (the server applies the same steps to its own copy).

SEARCH and SORT without UID get the same with message numbers, each valid when the client
reads it: a REMOVEFROM for an expunged message right before its EXPUNGE, an ADDTO for a new
one after the EXISTS that numbers it (§4.3.3, §4.3.4).

Refused, as RFC 5267 §4.3.1 allows (``* NO [NOUPDATE "tag"]``, the command itself completing
with its other options): more than `MAX_CONTEXTS` contexts per session, and message-number
contexts while QRESYNC is enabled (VANISHED carries no numbers to remove). Contexts end
when the mailbox is unselected or selected again and with CANCELUPDATE; a tag in use by a
live context cannot start another (BAD, §4.3).

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

Key = tuple[object, ...]


@dataclass
class Context:
    tag: str
    program: engine.Key
    criteria: list[sorting.Criterion] | None  # None: a SEARCH context (unordered)
    selected: SelectedMailbox  # the selection it belongs to (identity)
    uid: bool  # UID SEARCH/SORT: results are UIDs; otherwise message numbers
    members: set[int] = field(default_factory=set)  # UIDs in the client's result list
    ordered: list[tuple[Key, int]] = field(default_factory=list)  # SORT: (sort key, UID)
    # Message-number contexts: matching UIDs the client has no number for yet (no EXISTS
    # told), with their sort key; told right after the EXISTS (RFC 5267 §4.3.3).
    pending: dict[int, Key] = field(default_factory=dict)

    def remove(self, uid: int) -> int:
        """Takes `uid` out of the server's copy of the list; its position (0: unordered)."""
        self.members.discard(uid)
        if self.criteria is None:
            return 0
        i = next(i for i, (_, u) in enumerate(self.ordered) if u == uid)
        del self.ordered[i]
        return i + 1

    def add(self, uid: int, key: Key) -> int:
        self.members.add(uid)
        if self.criteria is None:
            return 0
        at = bisect.bisect_left(self.ordered, (key, uid))
        self.ordered.insert(at, (key, uid))
        return at + 1


def _uses_positions(program: engine.Key) -> bool:
    return engine.uses(program, engine.Positions)


class Contexts:
    """A session's update contexts and the changes not yet evaluated for them.

    Message numbers must be valid when the client reads them: a REMOVEFROM for an expunged
    message goes out right before its EXPUNGE (`before_expunge`, called by the session), an
    ADDTO for a new message after the EXISTS that numbers it (`after_flush`); changes found
    by evaluation between two flushes use the numbering the client has then."""

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
        if not uid_command and self.session.qresync:
            refusal = "with QRESYNC, updates are given for UID SEARCH and UID SORT only"
        elif len(self.live) >= MAX_CONTEXTS:
            refusal = f"at most {MAX_CONTEXTS} update contexts per session"
        sel = self.session.selected
        if refusal is not None or sel is None:
            code = b"NOUPDATE " + responses.quoted(tag)
            self.session.write_untagged(b"NO", responses.resp_text(refusal or "no mailbox", code))
            return
        context = Context(tag, program, criteria, sel, uid_command, set(uids))
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

    # --- output ------------------------------------------------------------------------------
    def _write(self, context: Context, removed: list[tuple[int, int]], added: list[tuple[int, int]]) -> None:
        """One ESEARCH with REMOVEFROM then ADDTO, each a list of (position, number) in the
        order the client applies them (§4.3.2); unordered contexts use position 0."""
        session = self.session
        if session.state == "logout" or not (removed or added):
            return  # nothing may follow BYE (RFC 9051 §7.1.5)
        items: list[bytes] = [b"ESEARCH", b"(TAG " + responses.quoted(context.tag) + b")"]
        if context.uid:
            items.append(b"UID")
        for name, pairs in ((b"REMOVEFROM", removed), (b"ADDTO", added)):
            if not pairs:
                continue
            if context.criteria is None:
                items += [name, b"(0 " + responses.uid_set(sorted(n for _, n in pairs)) + b")"]
            else:
                items += [name, b"(" + b" ".join(b"%d %d" % pair for pair in pairs) + b")"]
        session.write_untagged(*items)
        session.flush_output()

    def _message_number_contexts(self) -> list[Context]:
        sel = self.session.selected
        return [c for c in self.live.values() if not c.uid and c.selected is sel]

    # --- hooks the session calls while it writes updates ---------------------------------------
    def before_expunge(self, uid: int, msn: int) -> None:
        """Right before ``* msn EXPUNGE``: REMOVEFROM while `msn` still names the message."""
        for c in self._message_number_contexts():
            c.pending.pop(uid, None)
            if uid in c.members:
                self._write(c, [(c.remove(uid), msn)], [])

    def after_flush(self) -> None:
        """After the session wrote its queued updates (EXISTS included): ADDTO for matching
        messages the client now has numbers for."""
        sel = self.session.selected
        if sel is None:
            return
        for c in self._message_number_contexts():
            added = []
            for uid in sorted(c.pending):
                msn = sel.msn(uid)
                if msn is not None:
                    added.append((c.add(uid, c.pending.pop(uid)), msn))
                elif uid <= sel.max_uid:
                    del c.pending[uid]  # expunged before the client was told of it
            self._write(c, [], added)

    def vanished(self) -> None:
        """QRESYNC VANISHED gives no message numbers to remove: message-number contexts
        end (they are refused while QRESYNC is on; this covers ENABLE QRESYNC after them)."""
        for c in self._message_number_contexts():
            del self.live[c.tag]

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
        new = sorted(matched - context.members)
        keys: dict[int, Key] = {uid: () for uid in new}
        if new and context.criteria is not None:
            criteria = context.criteria
            summaries = await session.store.summaries(sel.mailbox_id, new)
            keys = {ms.uid: sorting.sort_key(sorting.summarize(0, ms), criteria) for ms in summaries}
        if context.tag not in self.live or session.selected is not sel:
            return  # cancelled or unselected meanwhile
        removed: list[tuple[int, int]] = []
        for uid in sorted(gone):
            context.pending.pop(uid, None)
            if context.uid and uid in context.members:  # message numbers: before_expunge did it
                removed.append((context.remove(uid), uid))
        for uid in sorted(added - matched):
            context.pending.pop(uid, None)
            number = uid if context.uid else sel.msn(uid)
            if uid in context.members and number is not None:
                removed.append((context.remove(uid), number))
        added_pairs: list[tuple[int, int]] = []
        for uid in new:
            if uid not in keys or uid in context.members:
                continue  # expunged meanwhile, or added by after_flush while we waited
            number = uid if context.uid else sel.msn(uid)
            if number is not None:
                added_pairs.append((context.add(uid, keys[uid]), number))
            elif uid > sel.max_uid:
                context.pending[uid] = keys[uid]  # told after the EXISTS that numbers it
        self._write(context, removed, added_pairs)
