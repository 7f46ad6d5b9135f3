"""The search engine: one typed search program, evaluated against one mailbox of the store.

IMAP SEARCH (and UID SEARCH, ESEARCH, SORT, THREAD, CONTEXT) and the webmail search all call
`search`; the IMAP adapter only turns the IMAP syntax into a `Key` tree and the result into
responses.

The program is a tree of `Key`s (msgspec Structs, tagged by ``type`` so a JSON API can decode
one and publish its schema): `All`, `Flag` (system flags and keywords, present or absent),
`Uids`/`Positions` (ranges of UIDs or of 1-based positions in the caller's view, already
resolved: no ``*`` or ``$``), `Size`, `Date` (received or sent date), `ModSeq`, `Address`
(From/To/Cc/Bcc), `Subject`, `Header`, `Body`, `Text`, `HasAttachment` (webmail's has:attachment), and
`And`/`Or`/`Not`.

Costs and limits (issue 17: a program of 10,000 keys on 5,000 messages froze the reactor):

- `check_program` bounds a program to `MAX_KEYS` keys and `MAX_DEPTH` levels of nesting
  (`LimitExceeded`); `search` calls it first. Adapters parsing a wire syntax should stop at
  the same limits while parsing (`MAX_KEYS`, `MAX_DEPTH`).
- The program is compiled once (needles case-folded, ranges merged and searched by
  bisection, children of And/Or deduplicated and ordered cheapest first), so evaluating it
  costs at most its size per message, and each message is decoded at most once however many
  text keys ask for it: the whole search is linear in program size × mailbox size.
- Everything goes through the store interface, in three stages, each only for the messages
  the one before left undecided: the index rows (`messages_async`: flags, sizes, dates,
  UIDs, modseqs); the part trees stored at delivery (`part_trees`, in batches of
  `TREE_BATCH`: Address, Subject, sent Date); the bodies (`scan_bodies`, in batches of
  `TEXT_BATCH`: Header/Body/Text), which the store reads and the compiled program matches in
  the store's files pool. The reactor-thread stages run in slices of at most
  `SLICE_SECONDS`, between which the engine yields to the reactor (`Scheduler.pause`), so
  other connections are served while a large search runs.

Text keys compare case-insensitively after NFC normalisation and Unicode case folding,
against decoded text (RFC 2047 words, transfer encodings, charsets); a text/html part is
searched as the text a reader sees (`mailsrv.message.htmltext.html_text`).

How to call it (IMAP SORT/ESORT/CONTEXT, webmail)::

    result = await search(store, mailbox_id, program, scheduler=ReactorScheduler(reactor),
                          view=session_uids)
    for match in result.matches:       # in view order (ascending position)
        match.position, match.message  # 1-based position in `view`; MessageInfo (uid, flags, ...)
    result.highest_modseq              # largest modseq among the matches (RFC 7162 §3.1.5)

`view` is the list of UIDs the caller addresses (an IMAP session's message sequence, MSN-1 →
UID); positions refer to it and UIDs that are no longer in the store are skipped. Without
`view` every message of the mailbox in UID order is searched. To sort, sort `matches` by
keys read from `store.summaries` (ops/sort.py) and `match.message`.
"""

from __future__ import annotations

import bisect
import datetime
import email.utils
import time
import unicodedata
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

import msgspec
from twisted.internet import threads
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater

from mailsrv.message.htmltext import html_text
from mailsrv.message.parse import body_text, decode_text, header_values, parse_headers
from mailsrv.message.part import EnvelopeAddress, Part
from mailsrv.ops.errors import InvalidInput, LimitExceeded
from mailsrv.store.interfaces import AccountStore, MessageInfo
from mailsrv.store.summary import has_attachment

MAX_KEYS = 1000  # keys in one program, counting And/Or/Not
MAX_DEPTH = 50  # nesting of And/Or/Not
MAX_TEXT = 1000  # characters of one text needle
# CPU spent on the reactor thread before yielding to it. Well under the 100 ms within which
# another connection's command must be answered while a search runs.
SLICE_SECONDS = 0.01
# Messages whose text is searched in one thread-pool call: large enough to amortise the hop,
# small enough that a huge mailbox does not pin one pool thread for long.
TEXT_BATCH = 200
# Part trees asked of the store at once (its limit is 1,000).
TREE_BATCH = 500


# --- the program -----------------------------------------------------------------------


class All(msgspec.Struct, frozen=True, tag="all"):
    """Every message."""


class Flag(msgspec.Struct, frozen=True, tag="flag"):
    """A system flag (``\\Seen``...) or keyword (``$Junk``), compared case-insensitively."""

    flag: str
    present: bool = True


class Uids(msgspec.Struct, frozen=True, tag="uids"):
    """UIDs in any of the inclusive ranges (low, high); no ranges matches nothing."""

    ranges: tuple[tuple[int, int], ...]


class Positions(msgspec.Struct, frozen=True, tag="positions"):
    """1-based positions in the searched view (IMAP message sequence numbers)."""

    ranges: tuple[tuple[int, int], ...]


AddressField = Literal["from", "to", "cc", "bcc"]
DateField = Literal["received", "sent"]
DateRelation = Literal["before", "on", "since"]


class Size(msgspec.Struct, frozen=True, tag="size"):
    """Size in octets strictly larger or smaller than `octets`."""

    relation: Literal["larger", "smaller"]
    octets: int


class Date(msgspec.Struct, frozen=True, tag="date"):
    """The received (internal) or sent (Date: header) day, disregarding time and timezone
    (RFC 9051 §6.4.4): before, on or since (on or after) `day`. A message without a
    parseable Date: header matches no "sent" key."""

    field: DateField
    relation: DateRelation
    day: datetime.date


class ModSeq(msgspec.Struct, frozen=True, tag="modseq"):
    """Modseq at least `at_least` (RFC 7162 §3.1.5)."""

    at_least: int


class Address(msgspec.Struct, frozen=True, tag="address"):
    """Substring of an envelope address field: display names decoded, and addresses."""

    field: AddressField
    text: str


class Subject(msgspec.Struct, frozen=True, tag="subject"):
    text: str


class Header(msgspec.Struct, frozen=True, tag="header"):
    """Substring of a header field's decoded value; an empty `text` matches every message
    that has the field (RFC 9051 §6.4.4)."""

    field: str
    text: str


class Body(msgspec.Struct, frozen=True, tag="body"):
    """Substring of the decoded text parts."""

    text: str


class Text(msgspec.Struct, frozen=True, tag="text"):
    """Substring of the decoded header or text parts."""

    text: str


class HasAttachment(msgspec.Struct, frozen=True, tag="hasAttachment"):
    """Messages with an attachment (`present`), or without one: the definition of the
    summaries' marker (`mailsrv.store.summary.has_attachment`), from the part tree."""

    present: bool = True


class And(msgspec.Struct, frozen=True, tag="and"):
    keys: tuple[Key, ...]


class Or(msgspec.Struct, frozen=True, tag="or"):
    keys: tuple[Key, ...]


class Not(msgspec.Struct, frozen=True, tag="not"):
    key: Key


Key = (
    All
    | Flag
    | Uids
    | Positions
    | Size
    | Date
    | ModSeq
    | Address
    | Subject
    | Header
    | Body
    | Text
    | HasAttachment
    | And
    | Or
    | Not
)


def ranges_of(numbers: Iterable[int]) -> tuple[tuple[int, int], ...]:
    """The fewest ranges covering exactly `numbers` (for `Uids` from a set of UIDs)."""
    out: list[tuple[int, int]] = []
    for n in sorted(set(numbers)):
        if out and out[-1][1] == n - 1:
            out[-1] = (out[-1][0], n)
        else:
            out.append((n, n))
    return tuple(out)


def check_program(program: Key) -> None:
    """Raises `LimitExceeded` when `program` has more than `MAX_KEYS` keys or is nested
    deeper than `MAX_DEPTH`, `InvalidInput` for a malformed key (empty And/Or, a needle
    over `MAX_TEXT` characters, a negative number)."""
    count = 0
    stack: list[tuple[Key, int]] = [(program, 0)]
    while stack:
        key, depth = stack.pop()
        count += 1
        if count > MAX_KEYS:
            raise LimitExceeded(f"search program has more than {MAX_KEYS} keys")
        if depth > MAX_DEPTH:
            raise LimitExceeded(f"search program is nested deeper than {MAX_DEPTH} levels")
        if isinstance(key, (And, Or)):
            if not key.keys:
                raise InvalidInput(f"empty {type(key).__name__} in search program")
            stack.extend((k, depth + 1) for k in key.keys)
        elif isinstance(key, Not):
            stack.append((key.key, depth + 1))
        elif isinstance(key, (Address, Subject, Header, Body, Text)):
            if len(key.text) > MAX_TEXT:
                raise InvalidInput(f"search text longer than {MAX_TEXT} characters")
        elif isinstance(key, (Size, ModSeq)):
            if (key.octets if isinstance(key, Size) else key.at_least) < 0:
                raise InvalidInput("negative number in search program")


# --- results -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    position: int  # 1-based position in the searched view
    message: MessageInfo


@dataclass(frozen=True)
class SearchResult:
    matches: tuple[Match, ...]  # ascending position
    highest_modseq: int  # largest modseq among the matches, 0 when none

    @property
    def uids(self) -> list[int]:
        return [m.message.uid for m in self.matches]


# --- scheduling --------------------------------------------------------------------------

_T = TypeVar("_T")


class Scheduler(Protocol):
    """Where the engine waits: `pause` lets the reactor serve others between slices,
    `in_thread` runs CPU work off the reactor thread (THREAD's tree building; body scans run
    in the store's files pool)."""

    def pause(self) -> Awaitable[None]: ...

    def in_thread(self, f: Callable[..., _T], *args: Any) -> Awaitable[_T]: ...


@dataclass
class ReactorScheduler:
    """Pauses with a zero-delay call on `reactor`; threads from the reactor's pool (or
    `run_in_thread`, e.g. a sized pool's ``deferToThreadPool``)."""

    reactor: IReactorTime
    run_in_thread: Callable[..., Deferred[Any]] = threads.deferToThread

    def pause(self) -> Deferred[None]:
        return deferLater(self.reactor, 0, lambda: None)

    def in_thread(self, f: Callable[..., _T], *args: Any) -> Deferred[_T]:
        return self.run_in_thread(f, *args)


class InlineScheduler:
    """Runs everything inline: for tests and callers without a reactor (the CLI)."""

    def __init__(self) -> None:
        self.pauses = 0

    async def pause(self) -> None:
        self.pauses += 1

    async def in_thread(self, f: Callable[..., _T], *args: Any) -> _T:
        return f(*args)


# --- text helpers ----------------------------------------------------------------------


def fold(text: str) -> str:
    """The form text keys compare in: NFC, then Unicode case folding."""
    return unicodedata.normalize("NFC", text).casefold()


def addresses_text(addrs: tuple[EnvelopeAddress, ...]) -> str:
    """Folded display names and addresses of an envelope address field, space-separated."""
    out = []
    for a in addrs:
        name = decode_text(a.name) if a.name else None
        out.append(" ".join(x for x in (name, f"{a.mailbox}@{a.host}" if a.host else a.mailbox) if x))
    return fold(" ".join(out))


def sent_date(tree: Part) -> datetime.date | None:
    env = tree.envelope
    if env is None or not env.date:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(env.date)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed.date() if parsed is not None else None


def _walk(part: Part) -> Iterable[Part]:
    stack = [part]
    while stack:
        p = stack.pop()
        yield p
        stack.extend(reversed(p.children))


def body_texts(raw: bytes, tree: Part) -> list[str]:
    """Folded decoded text of every leaf text/* part; text/html as the text a reader sees."""
    texts = []
    for p in _walk(tree):
        if p.media_type == "text" and not p.children:
            text = body_text(p, raw[p.body_start : p.body_end])
            if p.media_subtype == "html":
                text = html_text(text)
            texts.append(fold(text))
    return texts


# --- compiled evaluation -----------------------------------------------------------------

INDEX, TREE, FILE = 0, 1, 2  # what a node needs: the index row, the part tree, the file


@dataclass
class _Candidate:
    """One message being evaluated, with what was derived from it so far (each at most once).
    `tree` is set once the cheap keys left the message undecided, `raw` only while a body
    scan looks at it (in the store's files pool)."""

    message: MessageInfo
    position: int
    tree: Part | None = None
    raw: bytes | None = None
    _flags: frozenset[str] | None = None
    _headers: Any = None
    _bodies: list[str] | None = None
    _header_text: str | None = None
    _addresses: dict[str, str] = field(default_factory=dict)
    _subject: str | None = None

    def folded_flags(self) -> frozenset[str]:
        if self._flags is None:
            self._flags = frozenset(f.lower() for f in self.message.flags)
        return self._flags

    def addresses(self, name: str) -> str:
        assert self.tree is not None
        text = self._addresses.get(name)
        if text is None:
            env = self.tree.envelope
            if env is None:
                text = ""
            else:
                text = addresses_text({"from": env.from_, "to": env.to, "cc": env.cc, "bcc": env.bcc}[name])
            self._addresses[name] = text
        return text

    def subject(self) -> str:
        assert self.tree is not None
        if self._subject is None:
            envelope = self.tree.envelope
            raw = envelope.subject if envelope else None
            self._subject = fold(decode_text(raw) or "")
        return self._subject

    def header_values(self, name: str) -> list[str]:
        assert self.raw is not None and self.tree is not None
        if self._headers is None:
            self._headers = parse_headers(self.raw[self.tree.header_start : self.tree.body_start])
        return [fold(decode_text(v) or "") for v in header_values(self._headers, name)]

    def bodies(self) -> list[str]:
        assert self.raw is not None and self.tree is not None
        if self._bodies is None:
            self._bodies = body_texts(self.raw, self.tree)
        return self._bodies

    def header_text(self) -> str:
        assert self.raw is not None and self.tree is not None
        if self._header_text is None:
            block = self.raw[self.tree.header_start : self.tree.body_start].decode("utf-8", "replace")
            self._header_text = fold(decode_text(block) or "")
        return self._header_text

    def release_file(self) -> None:
        self.raw = None
        self._headers = self._bodies = self._header_text = None


class _Node:
    """A compiled key. `test` answers True/False, or None when the node needs the part tree
    or the message file and it is not loaded (the caller then loads it and asks again)."""

    need = INDEX

    def test(self, c: _Candidate) -> bool | None:
        raise NotImplementedError


class _True(_Node):
    def test(self, c: _Candidate) -> bool | None:
        return True


class _Flag(_Node):
    def __init__(self, flag: str, present: bool) -> None:
        self.flag = flag.lower()
        self.present = present

    def test(self, c: _Candidate) -> bool | None:
        return (self.flag in c.folded_flags()) == self.present


class _Ranges(_Node):
    def __init__(self, ranges: Iterable[tuple[int, int]], attribute: str) -> None:
        merged: list[tuple[int, int]] = []
        for lo, hi in sorted((min(a, b), max(a, b)) for a, b in ranges):
            if merged and lo <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
            else:
                merged.append((lo, hi))
        self.lows = [lo for lo, _ in merged]
        self.highs = [hi for _, hi in merged]
        self.by_position = attribute == "position"

    def test(self, c: _Candidate) -> bool | None:
        n = c.position if self.by_position else c.message.uid
        i = bisect.bisect_right(self.lows, n) - 1
        return i >= 0 and n <= self.highs[i]


class _Size(_Node):
    def __init__(self, key: Size) -> None:
        self.larger = key.relation == "larger"
        self.octets = key.octets

    def test(self, c: _Candidate) -> bool | None:
        size = c.message.size
        return size > self.octets if self.larger else size < self.octets


def _compare_day(relation: str, day: datetime.date, target: datetime.date) -> bool:
    if relation == "before":
        return day < target
    if relation == "on":
        return day == target
    return day >= target


class _Date(_Node):
    def __init__(self, key: Date) -> None:
        self.sent = key.field == "sent"
        self.need = TREE if self.sent else INDEX
        self.relation = key.relation
        self.day = key.day

    def test(self, c: _Candidate) -> bool | None:
        if not self.sent:
            return _compare_day(self.relation, c.message.internal_date.date(), self.day)
        if c.tree is None:
            return None
        day = sent_date(c.tree)
        return day is not None and _compare_day(self.relation, day, self.day)


class _ModSeq(_Node):
    def __init__(self, at_least: int) -> None:
        self.at_least = at_least

    def test(self, c: _Candidate) -> bool | None:
        return c.message.modseq >= self.at_least


class _Address(_Node):
    need = TREE

    def __init__(self, key: Address) -> None:
        self.field = key.field
        self.needle = fold(key.text)

    def test(self, c: _Candidate) -> bool | None:
        return None if c.tree is None else self.needle in c.addresses(self.field)


class _Subject(_Node):
    need = TREE

    def __init__(self, text: str) -> None:
        self.needle = fold(text)

    def test(self, c: _Candidate) -> bool | None:
        return None if c.tree is None else self.needle in c.subject()


class _HasAttachment(_Node):
    need = TREE

    def __init__(self, present: bool) -> None:
        self.present = present

    def test(self, c: _Candidate) -> bool | None:
        return None if c.tree is None else has_attachment(c.tree) == self.present


class _Header(_Node):
    need = FILE

    def __init__(self, key: Header) -> None:
        self.field = key.field
        self.needle = fold(key.text)

    def test(self, c: _Candidate) -> bool | None:
        if c.raw is None:
            return None
        return any(self.needle in v for v in c.header_values(self.field))


class _Body(_Node):
    need = FILE

    def __init__(self, text: str, with_header: bool) -> None:
        self.needle = fold(text)
        self.with_header = with_header

    def test(self, c: _Candidate) -> bool | None:
        if c.raw is None:
            return None
        if self.with_header and self.needle in c.header_text():
            return True
        return any(self.needle in t for t in c.bodies())


class _Not(_Node):
    def __init__(self, child: _Node) -> None:
        self.child = child
        self.need = child.need

    def test(self, c: _Candidate) -> bool | None:
        r = self.child.test(c)
        return None if r is None else not r


class _Junction(_Node):
    """And (`decisive` False: one False decides) or Or (`decisive` True: one True decides)."""

    def __init__(self, children: list[_Node], decisive: bool) -> None:
        self.children = sorted(children, key=lambda n: n.need)  # cheapest first
        self.need = max(n.need for n in children)
        self.decisive = decisive

    def test(self, c: _Candidate) -> bool | None:
        undecided = False
        for child in self.children:
            r = child.test(c)
            if r is self.decisive:
                return r
            if r is None:
                undecided = True
        return None if undecided else not self.decisive


def _unique(keys: Iterable[Key]) -> list[Key]:
    seen: set[Key] = set()
    out = []
    for k in keys:
        if k not in seen:
            seen.add(k)
            out.append(k)
    return out


def compile_program(key: Key) -> _Node:
    """The evaluable form of a checked program (see `check_program`)."""
    if isinstance(key, All):
        return _True()
    if isinstance(key, Flag):
        return _Flag(key.flag, key.present)
    if isinstance(key, Uids):
        return _Ranges(key.ranges, "uid")
    if isinstance(key, Positions):
        return _Ranges(key.ranges, "position")
    if isinstance(key, Size):
        return _Size(key)
    if isinstance(key, Date):
        return _Date(key)
    if isinstance(key, ModSeq):
        return _ModSeq(key.at_least)
    if isinstance(key, Address):
        return _Address(key)
    if isinstance(key, Subject):
        return _Subject(key.text)
    if isinstance(key, Header):
        return _Header(key)
    if isinstance(key, HasAttachment):
        return _HasAttachment(key.present)
    if isinstance(key, Body):
        return _Body(key.text, with_header=False)
    if isinstance(key, Text):
        return _Body(key.text, with_header=True)
    if isinstance(key, Not):
        if isinstance(key.key, Not):
            return compile_program(key.key.key)
        return _Not(compile_program(key.key))
    if isinstance(key, And):
        # Duplicates and ALL decide nothing in a conjunction: "ALL ALL ... ALL" costs one test.
        conjuncts = [k for k in _unique(key.keys) if not isinstance(k, All)]
        if not conjuncts:
            return _True()
        if len(conjuncts) == 1:
            return compile_program(conjuncts[0])
        return _Junction([compile_program(k) for k in conjuncts], decisive=False)
    if isinstance(key, Or):
        disjuncts = _unique(key.keys)
        if any(isinstance(k, All) for k in disjuncts):
            return _True()
        if len(disjuncts) == 1:
            return compile_program(disjuncts[0])
        return _Junction([compile_program(k) for k in disjuncts], decisive=True)
    raise InvalidInput(f"unknown search key {type(key).__name__}")


def uses(program: Key, kind: type[Any]) -> bool:
    """Whether `program` contains a key of type `kind` (e.g. `ModSeq`, for RFC 7162)."""
    stack: list[Key] = [program]
    while stack:
        key = stack.pop()
        if isinstance(key, kind):
            return True
        if isinstance(key, (And, Or)):
            stack.extend(key.keys)
        elif isinstance(key, Not):
            stack.append(key.key)
    return False


# --- the search ------------------------------------------------------------------------


def _body_matcher(program: _Node, batch: list[_Candidate]) -> Callable[[int, bytes], bool]:
    """What the store runs on each body of `batch` in its files pool: decodes and compares,
    touching only that candidate (its part tree was loaded before on the reactor thread)."""
    by_id = {c.message.message_id: c for c in batch}

    def match(message_id: int, raw: bytes) -> bool:
        c = by_id[message_id]
        c.raw = raw
        try:
            return bool(program.test(c))
        finally:
            c.release_file()

    return match


class _Slicer:
    """Yields to the reactor once `SLICE_SECONDS` of CPU went by since the last pause."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self.start = time.perf_counter()

    async def tick(self) -> None:
        if time.perf_counter() - self.start > SLICE_SECONDS:
            await self.scheduler.pause()
            self.start = time.perf_counter()


async def search(
    store: AccountStore,
    mailbox_id: int,
    program: Key,
    *,
    scheduler: Scheduler,
    view: Sequence[int] | None = None,
) -> SearchResult:
    """The messages of `mailbox_id` (or of `view`, UIDs in the caller's order) that match
    `program`. Raises `LimitExceeded`/`InvalidInput` (see `check_program`) before any work;
    store errors (`MailboxNotFound`) pass through."""
    check_program(program)
    compiled = compile_program(program)
    infos = await store.messages_async(mailbox_id)
    if view is None:
        ordered: list[tuple[int, MessageInfo]] = [(i + 1, m) for i, m in enumerate(infos)]
    else:
        by_uid = {m.uid: m for m in infos}
        ordered = [(i + 1, by_uid[uid]) for i, uid in enumerate(view) if uid in by_uid]
    matched: list[_Candidate] = []
    slicer = _Slicer(scheduler)
    # 1. The index row (flags, sizes, dates, UIDs, modseqs) decides most messages.
    need_tree: list[_Candidate] = []
    for position, message in ordered:
        c = _Candidate(message, position)
        result = compiled.test(c)
        if result is None:
            need_tree.append(c)
        elif result:
            matched.append(c)
        await slicer.tick()
    # 2. The part tree stored at delivery (envelope keys) decides most of the rest.
    need_file: list[_Candidate] = []
    for start in range(0, len(need_tree), TREE_BATCH):
        chunk = need_tree[start : start + TREE_BATCH]
        trees = await store.part_trees([c.message.message_id for c in chunk])
        for c in chunk:
            c.tree = trees.get(c.message.message_id)
            if c.tree is None:
                continue  # expunged meanwhile: it matches nothing (RFC 9051 §7.5.1)
            result = compiled.test(c)
            if result is None:
                need_file.append(c)
            elif result:
                matched.append(c)
            await slicer.tick()
    # 3. Header and body text: the store scans the bodies in its files pool.
    for start in range(0, len(need_file), TEXT_BATCH):
        batch = need_file[start : start + TEXT_BATCH]
        by_id = {c.message.message_id: c for c in batch}
        hits = await store.scan_bodies(list(by_id), _body_matcher(compiled, batch))
        matched += [by_id[i] for i in hits]
    if need_tree:
        matched.sort(key=lambda c: c.position)
    return SearchResult(
        matches=tuple(Match(c.position, c.message) for c in matched),
        highest_modseq=max((c.message.modseq for c in matched), default=0),
    )
