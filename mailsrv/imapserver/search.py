"""SEARCH and UID SEARCH (RFC 9051 §6.4.4) with ESEARCH (RFC 4731), SEARCHRES (RFC 5182)
and MODSEQ (RFC 7162 §3.1.5).

The program is parsed into a tree of `Key`s and evaluated per message. Keys on flags,
sizes, dates, UIDs and modseqs use the index only; envelope keys (FROM, SUBJECT, ...) the
stored part tree; HEADER, BODY and TEXT read the message file (in the thread pool when it
is large), decoded by transfer encoding and charset, compared case-insensitively after
Unicode case folding. A text/html part is searched as the text a reader sees (markup,
comments, scripts and styles dropped, character references decoded: `html_text`), so
"div" matches no HTML mail for its tags and `<b>wo</b>rd` matches "word". A message is
read at most once per command.
"""

from __future__ import annotations

import datetime
import email.utils
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from twisted.internet import threads

from mailsrv.imapserver import responses
from mailsrv.imapserver.commands import SELECTED_ONLY, Command, Reply, command
from mailsrv.imapserver.errors import UserError
from mailsrv.imapserver.reader import Reader
from mailsrv.imapserver.sequence import SequenceSet, is_sequence_set_start, parse_sequence_set
from mailsrv.message.htmltext import html_text
from mailsrv.message.parse import body_text, decode_text, header_values, parse_headers
from mailsrv.message.part import EnvelopeAddress, Part
from mailsrv.store.interfaces import AccountStore, MessageInfo

if TYPE_CHECKING:
    from mailsrv.imapserver.session import Session

MAX_DEPTH = 50  # nesting of NOT/OR/parentheses


def fold(text: str) -> str:
    return unicodedata.normalize("NFC", text).casefold()


@dataclass
class Key:
    op: str  # keyword, "AND", "SEQ", "UIDSET"
    args: list[Key] = field(default_factory=list)
    text: str = ""
    field_name: str = ""
    number: int = 0
    date: datetime.date | None = None
    seqset: SequenceSet | None = None

    def needs(self) -> str:
        """ "index", "tree" or "file": the most a key needs to be evaluated."""
        if self.op in ("BODY", "TEXT", "HEADER"):
            return "file"
        if self.op in ("FROM", "TO", "CC", "BCC", "SUBJECT", "SENTBEFORE", "SENTON", "SENTSINCE"):
            return "tree"
        level = "index"
        for a in self.args:
            n = a.needs()
            if n == "file" or (n == "tree" and level == "index"):
                level = n
        return level


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
_STRING_KEYS = frozenset({"BCC", "BODY", "CC", "FROM", "SUBJECT", "TEXT", "TO"})
_DATE_KEYS = frozenset({"BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE"})


def _text(reader: Reader) -> str:
    raw = reader.astring_bytes()
    return raw.decode("utf-8", "replace")


def parse_key(reader: Reader, depth: int = 0) -> Key:
    if depth > MAX_DEPTH:
        raise reader.error("search program nested too deeply")
    if reader.peek() == b"(":
        keys = reader.paren_list(lambda: parse_key(reader, depth + 1), allow_empty=False)
        return Key("AND", keys)
    if is_sequence_set_start(reader):
        return Key("SEQ", seqset=parse_sequence_set(reader))
    name = reader.keyword()
    if name in ("ALL", "NEW", "OLD", "RECENT") or name in _FLAG_KEYS:
        return Key(name)
    reader.sp()
    if name in _STRING_KEYS:
        return Key(name, text=_text(reader))
    if name in ("KEYWORD", "UNKEYWORD"):
        return Key(name, text=reader.flag())
    if name in _DATE_KEYS:
        return Key(name, date=reader.date())
    if name in ("LARGER", "SMALLER"):
        return Key(name, number=reader.number64())
    if name == "UID":
        return Key("UIDSET", seqset=parse_sequence_set(reader))
    if name == "HEADER":
        field_name = reader.astring()
        reader.sp()
        return Key("HEADER", field_name=field_name, text=_text(reader))
    if name == "NOT":
        return Key("NOT", [parse_key(reader, depth + 1)])
    if name == "OR":
        a = parse_key(reader, depth + 1)
        reader.sp()
        return Key("OR", [a, parse_key(reader, depth + 1)])
    if name == "MODSEQ":
        # Optional entry name and type (RFC 7162 §3.1.5): accepted and ignored, we keep
        # one modseq per message.
        if reader.peek() == b'"':
            reader.string()
            reader.sp()
            reader.keyword()
            reader.sp()
        return Key("MODSEQ", number=reader.number64())
    raise reader.error(f"unknown search key {name}")


@dataclass
class SearchRequest:
    program: Key
    return_options: list[str] | None  # None: no RETURN (plain SEARCH response in rev1)
    charset: str | None = None


def parse_search(reader: Reader) -> SearchRequest:
    return_options: list[str] | None = None
    charset = None
    if reader.take(b"RETURN "):
        return_options = [o.upper() for o in reader.paren_list(reader.keyword)]
        reader.sp()
    if reader.take(b"CHARSET "):
        charset = reader.astring().upper()
        reader.sp()
    keys = [parse_key(reader)]
    while reader.take(b" "):
        keys.append(parse_key(reader))
    reader.end()
    for option in return_options or []:
        if option not in ("MIN", "MAX", "ALL", "COUNT", "SAVE"):
            raise reader.error(f"unknown search return option {option}")
    return SearchRequest(Key("AND", keys) if len(keys) > 1 else keys[0], return_options, charset)


# --- evaluation ------------------------------------------------------------------------


@dataclass
class Candidate:
    message: MessageInfo
    msn: int
    tree: Part | None = None
    raw: bytes | None = None


def _addresses_text(addrs: tuple[EnvelopeAddress, ...]) -> str:
    out = []
    for a in addrs:
        name = decode_text(a.name) if a.name else None
        out.append(" ".join(x for x in (name, f"{a.mailbox}@{a.host}" if a.host else a.mailbox) if x))
    return fold(" ".join(out))


def _sent_date(tree: Part) -> datetime.date | None:
    env = tree.envelope
    if env is None or not env.date:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(env.date)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed.date() if parsed is not None else None


def _walk(part: Part) -> list[Part]:
    out = [part]
    for c in part.children:
        out.extend(_walk(c))
    return out


def _body_texts(raw: bytes, tree: Part) -> list[str]:
    texts = []
    for p in _walk(tree):
        if p.media_type == "text" and not p.children:
            text = body_text(p, raw[p.body_start : p.body_end])
            if p.media_subtype == "html":
                text = html_text(text)
            texts.append(fold(text))
    return texts


def _header_values(raw: bytes, tree: Part, name: str) -> list[str]:
    msg = parse_headers(raw[tree.header_start : tree.body_start])
    return [fold(decode_text(v) or "") for v in header_values(msg, name)]


class Evaluator:
    def __init__(self, session: Session, uid_largest: int, count: int) -> None:
        self.session = session
        self.uid_largest = uid_largest
        self.count = count
        self.highest_modseq_seen = 0
        self.used_modseq = False
        self._saved: frozenset[int] | None = None

    def saved(self) -> frozenset[int]:
        if self._saved is None:
            self._saved = frozenset(self.session.saved_search)
        return self._saved

    def tree(self, c: Candidate) -> Part:
        if c.tree is None:
            c.tree = self.session.store.part_tree(c.message.message_id)
        return c.tree

    def matches(self, key: Key, c: Candidate) -> bool | None:
        """Whether `c` matches `key`; None when that depends on a key that needs the message
        file and `c.raw` is not loaded yet. Cheap keys are tried first so the file is read
        only for messages the index and the part tree cannot decide."""
        m = c.message
        op = key.op
        if op == "AND":
            undecided = False
            for k in sorted(key.args, key=_cost):
                r = self.matches(k, c)
                if r is False:
                    return False
                undecided = undecided or r is None
            return None if undecided else True
        if op == "ALL":
            return True
        if op == "NOT":
            r = self.matches(key.args[0], c)
            return None if r is None else not r
        if op == "OR":
            results = [self.matches(k, c) for k in sorted(key.args, key=_cost)]
            if True in results:
                return True
            return None if None in results else False
        if key.needs() == "file" and c.raw is None:
            return None
        if op in _FLAG_KEYS:
            flag, present = _FLAG_KEYS[op]
            return (flag in m.flags) == present
        if op == "SEQ":
            assert key.seqset is not None
            if key.seqset.saved:
                return m.uid in self.saved()
            return key.seqset.contains_number(c.msn, self.count)
        if op == "UIDSET":
            assert key.seqset is not None
            if key.seqset.saved:
                return m.uid in self.saved()
            return key.seqset.contains_number(m.uid, self.uid_largest)
        if op in ("KEYWORD", "UNKEYWORD"):
            has = key.text.lower() in {f.lower() for f in m.flags}
            return has if op == "KEYWORD" else not has
        if op == "LARGER":
            return m.size > key.number
        if op == "SMALLER":
            return m.size < key.number
        if op in ("RECENT", "NEW", "OLD"):
            sel = self.session.selected
            recent = sel is not None and m.uid in sel.recent
            if op == "RECENT":
                return recent
            if op == "NEW":
                return recent and "\\Seen" not in m.flags
            return not recent
        if op == "MODSEQ":
            self.used_modseq = True
            return m.modseq >= key.number
        if op in ("BEFORE", "ON", "SINCE"):
            # RFC 9051 §6.4.4: internal date, disregarding time and timezone.
            day = m.internal_date.date()
            return _compare_date(op, day, key.date)
        if op in ("SENTBEFORE", "SENTON", "SENTSINCE"):
            sent = _sent_date(self.tree(c))
            return sent is not None and _compare_date(op[4:], sent, key.date)
        if op in ("FROM", "TO", "CC", "BCC"):
            env = self.tree(c).envelope
            if env is None:
                return False
            addrs = {"FROM": env.from_, "TO": env.to, "CC": env.cc, "BCC": env.bcc}[op]
            return fold(key.text) in _addresses_text(addrs)
        if op == "SUBJECT":
            tree = self.tree(c)
            subject = tree.envelope.subject if tree.envelope else None
            return fold(key.text) in fold(decode_text(subject) or "")
        if op == "HEADER":
            assert c.raw is not None
            needle = fold(key.text)
            values = _header_values(c.raw, self.tree(c), key.field_name)
            # An empty string matches every message that has the field (RFC 9051 §6.4.4).
            return any(needle in v for v in values)
        if op == "BODY":
            assert c.raw is not None
            needle = fold(key.text)
            return any(needle in t for t in _body_texts(c.raw, self.tree(c)))
        if op == "TEXT":
            assert c.raw is not None
            needle = fold(key.text)
            tree = self.tree(c)
            header = fold(decode_text(c.raw[tree.header_start : tree.body_start].decode("utf-8", "replace")) or "")
            return needle in header or any(needle in t for t in _body_texts(c.raw, tree))
        raise AssertionError(op)


_COST = {"index": 0, "tree": 1, "file": 2}


def _cost(key: Key) -> int:
    return _COST[key.needs()]


def _compare_date(op: str, day: datetime.date, target: datetime.date | None) -> bool:
    assert target is not None
    if op == "BEFORE":
        return day < target
    if op == "ON":
        return day == target
    return day >= target


# Messages whose text is searched in one thread-pool call: large enough to amortise the
# hop, small enough that a huge mailbox does not pin one pool thread for long.
TEXT_BATCH = 200

ThreadRunner = Callable[..., Awaitable[list[Candidate]]]


def _match_files(store: AccountStore, evaluator: Evaluator, program: Key, batch: list[Candidate]) -> list[Candidate]:
    """Runs in the thread pool: reads, decodes and compares the files of `batch`. Touches
    only the files and data loaded beforehand on the reactor thread (part trees, saved set)."""
    hits = []
    for c in batch:
        try:
            c.raw = store.read(c.message.message_id)
        except FileNotFoundError:
            continue  # expunged by another session meanwhile: it matches nothing (RFC 9051 §7.5.1)
        try:
            if evaluator.matches(program, c):
                hits.append(c)
        finally:
            c.raw = None
    return hits


async def run_search(
    session: Session, request: SearchRequest, in_thread: ThreadRunner = threads.deferToThread
) -> tuple[list[Candidate], Evaluator]:
    """Index and part-tree keys are decided on the reactor thread; messages they leave
    undecided have their files read and searched in the thread pool, in batches."""
    sel = session.selected
    assert sel is not None
    store = session.store
    infos = {m.uid: m for m in store.messages(sel.mailbox_id)}
    evaluator = Evaluator(session, sel.max_uid, sel.count)
    evaluator.saved()  # loaded here: threads must not read session state
    program = request.program
    matched: list[Candidate] = []
    undecided: list[Candidate] = []
    for i, uid in enumerate(sel.uids):
        m = infos.get(uid)
        if m is None:
            continue  # expunged by another session, not yet announced
        c = Candidate(m, i + 1)
        result = evaluator.matches(program, c)
        if result is None:
            evaluator.tree(c)  # the store's index is used on the reactor thread only
            undecided.append(c)
        elif result:
            matched.append(c)
    for start in range(0, len(undecided), TEXT_BATCH):
        matched += await in_thread(_match_files, store, evaluator, program, undecided[start : start + TEXT_BATCH])
    if undecided:
        matched.sort(key=lambda c: c.msn)
    for c in matched:
        evaluator.highest_modseq_seen = max(evaluator.highest_modseq_seen, c.message.modseq)
    return matched, evaluator


@command("SEARCH", SELECTED_ONLY, uid=True)
async def search(session: Session, cmd: Command) -> Reply | None:
    request = parse_search(cmd.reader)
    if request.charset is not None and request.charset not in ("UTF-8", "US-ASCII"):
        raise UserError("unsupported charset", "BADCHARSET (UTF-8 US-ASCII)")
    if _uses(request.program, "MODSEQ"):
        session.enable_condstore()
    matched, evaluator = await run_search(session, request)
    # RFC 7162 §3.1.5: the highest modseq is reported whenever the program has MODSEQ.
    evaluator.used_modseq = _uses(request.program, "MODSEQ")
    numbers = [c.message.uid if cmd.uid else c.msn for c in matched]
    uids = [c.message.uid for c in matched]
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
        if evaluator.used_modseq and matched:
            parts.append(b"(MODSEQ %d)" % evaluator.highest_modseq_seen)
        session.write_untagged(*parts)
        return None
    wanted = options if options else ["ALL"]
    if wanted == ["SAVE"]:
        return None  # RFC 5182 §2.1: SAVE alone returns no ESEARCH
    if options == [] or options is None:
        wanted = ["ALL"]
    items: list[bytes] = [b"ESEARCH", b"(TAG " + responses.quoted(cmd.tag) + b")"]
    if cmd.uid:
        items.append(b"UID")
    if numbers:
        from mailsrv.imapserver.session import uid_set

        if "MIN" in wanted:
            items += [b"MIN", b"%d" % min(numbers)]
        if "MAX" in wanted:
            items += [b"MAX", b"%d" % max(numbers)]
        if "ALL" in wanted:
            items += [b"ALL", uid_set(sorted(numbers))]
    if "COUNT" in wanted:
        items += [b"COUNT", b"%d" % len(numbers)]
    if evaluator.used_modseq and matched:
        items += [b"MODSEQ", b"%d" % evaluator.highest_modseq_seen]
    session.write_untagged(*items)
    return None


def _uses(key: Key, op: str) -> bool:
    return key.op == op or any(_uses(a, op) for a in key.args)
