"""FETCH and UID FETCH (RFC 9051 §6.4.5), with BINARY (RFC 3516) and CONDSTORE/QRESYNC
modifiers (RFC 7162 §3.1.4, §3.2.6).

Served from the stored part tree and ranged reads of the message file: sections are cut by
the offsets recorded at delivery, never by re-parsing. Items that need file bytes read the
file once per message (in the thread pool when it is large).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mailsrv.imapserver import bodystructure, responses
from mailsrv.imapserver.commands import SELECTED_ONLY, Command, Reply, command
from mailsrv.imapserver.errors import SyntaxError_, UserError
from mailsrv.imapserver.reader import Reader
from mailsrv.imapserver.sequence import parse_sequence_set, resolve
from mailsrv.message.parse import decode_body
from mailsrv.message.part import Part
from mailsrv.store.interfaces import FlagMode, MessageInfo

if TYPE_CHECKING:
    from mailsrv.imapserver.session import Session

# Messages up to this size are read on the reactor thread (a page-cache read of a few
# microseconds); larger ones in the thread pool.
INLINE_READ_LIMIT = 128 * 1024

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class Section:
    """BODY[...] / BINARY[...]: a part path and what of it."""

    path: tuple[int, ...] = ()
    text: str = ""  # "", "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME"
    fields: tuple[str, ...] = ()

    def spec(self) -> bytes:
        parts = [".".join(str(n) for n in self.path)] if self.path else []
        if self.text:
            parts.append(self.text)
        out = ".".join(parts).encode("ascii")
        if self.fields:
            out += b" (" + b" ".join(f.encode("utf-8") for f in self.fields) + b")"
        return out


@dataclass(frozen=True)
class Item:
    name: str  # ENVELOPE, FLAGS, INTERNALDATE, RFC822.SIZE, UID, MODSEQ, BODY, BODYSTRUCTURE,
    # BODY[] (section), BINARY[] (section), BINARY.SIZE, RFC822, RFC822.HEADER, RFC822.TEXT
    section: Section | None = None
    peek: bool = False
    partial: tuple[int, int] | None = None


@dataclass
class FetchRequest:
    items: list[Item] = field(default_factory=list)
    changed_since: int | None = None
    vanished: bool = False

    @property
    def needs_file(self) -> bool:
        return any(i.section is not None or i.name in ("RFC822", "RFC822.HEADER", "RFC822.TEXT") for i in self.items)

    @property
    def sets_seen(self) -> bool:
        return any(
            (i.section is not None and not i.peek and i.name != "BINARY.SIZE") or i.name in ("RFC822", "RFC822.TEXT")
            for i in self.items
        )


_MACROS = {
    "ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
    "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
    "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"),
}
_SIMPLE = frozenset(
    {
        "ENVELOPE",
        "FLAGS",
        "INTERNALDATE",
        "RFC822.SIZE",
        "UID",
        "MODSEQ",
        "BODYSTRUCTURE",
        "RFC822",
        "RFC822.HEADER",
        "RFC822.TEXT",
    }
)


def _section(reader: Reader, binary: bool) -> Section:
    reader.expect(b"[")
    path: list[int] = []
    text = ""
    fields: tuple[str, ...] = ()
    dot = False
    while reader.peek().isdigit():
        path.append(reader.nz_number())
        dot = reader.take(b".")
        if not dot:
            break
    if dot and reader.peek() == b"]":
        raise reader.error("section ends with a dot")
    if reader.peek() != b"]":
        if binary:
            raise reader.error("BINARY takes only part numbers")
        word = reader._span(lambda b: b not in b" ]").decode("ascii", "replace").upper()
        if word not in ("HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME"):
            raise reader.error(f"unknown section {word}")
        if word == "MIME" and not path:
            raise reader.error("MIME needs a part number")
        text = word
        if word.startswith("HEADER.FIELDS"):
            reader.sp()
            fields = tuple(f.upper() for f in reader.paren_list(reader.astring, allow_empty=False))
    reader.expect(b"]")
    return Section(tuple(path), text, fields)


def _partial(reader: Reader) -> tuple[int, int] | None:
    if not reader.take(b"<"):
        return None
    start = reader.number()
    reader.expect(b".")
    length = reader.nz_number()
    reader.expect(b">")
    return (start, length)


def _item(reader: Reader) -> Item:
    name = reader._span(lambda b: b not in b" ()[<").decode("ascii", "replace").upper()
    if name in ("BODY", "BODY.PEEK", "BINARY", "BINARY.PEEK", "BINARY.SIZE"):
        if reader.peek() == b"[":
            binary = name.startswith("BINARY")
            section = _section(reader, binary)
            partial = _partial(reader) if name != "BINARY.SIZE" else None
            base = "BINARY.SIZE" if name == "BINARY.SIZE" else ("BINARY" if binary else "BODY[]")
            return Item(base, section, peek=name.endswith(".PEEK"), partial=partial)
        if name == "BODY":
            return Item("BODY")
        raise reader.error(f"{name} needs a section")
    if name in _SIMPLE:
        return Item(name)
    raise reader.error(f"unknown fetch item {name or reader.peek().decode('ascii', 'replace')}")


def parse_fetch(reader: Reader) -> FetchRequest:
    """The fetch-att list (or macro) and the optional modifiers."""
    request = FetchRequest()
    if reader.peek() == b"(":
        request.items = reader.paren_list(lambda: _item(reader), allow_empty=False)
    else:
        save = reader.pos
        word = reader._span(lambda b: b not in b" ()[<").decode("ascii", "replace").upper()
        if word in _MACROS:
            request.items = [Item(n) for n in _MACROS[word]]
        else:
            reader.pos = save
            request.items = [_item(reader)]
    if reader.take(b" "):

        def modifier() -> None:
            name = reader.keyword()
            if name == "CHANGEDSINCE":
                reader.sp()
                request.changed_since = reader.number64()
            elif name == "VANISHED":
                request.vanished = True
            else:
                raise reader.error(f"unknown fetch modifier {name}")

        reader.paren_list(modifier, allow_empty=False)
    reader.end()
    return request


# --- sections --------------------------------------------------------------------------


def find_part(root: Part, path: tuple[int, ...]) -> Part | None:
    """The part a section's part number names (RFC 9051 §6.4.5). Numbers index into the
    children of a multipart; a message whose body is not multipart has the single part 1,
    the message itself. After a message/rfc822 (or message/global) part, the next number
    is a part of the message it encapsulates, numbered the same way: so "1" of such a
    part is the whole encapsulated message, "1.1" its first part."""
    container = root
    part = root
    for depth, n in enumerate(path):
        if depth:
            if part.is_message and part.children:
                container = part.children[0]
            elif part.is_multipart:
                container = part
            else:
                return None
        if container.is_multipart:
            if not 1 <= n <= len(container.children):
                return None
            part = container.children[n - 1]
        elif n == 1:
            part = container
        else:
            return None
    return part


_HEADER_LINE = re.compile(rb"(?m)^([^:\s][^:\r\n]*):")


def filter_header(block: bytes, names: tuple[str, ...], keep: bool) -> bytes:
    """The header fields of `block` named (keep) or not named (not keep) in `names`,
    continuation lines included, followed by the blank line (RFC 9051 §6.4.5)."""
    wanted = {n.lower() for n in names}
    out: list[bytes] = []
    current: list[bytes] = []
    include = False
    for line in block.splitlines(keepends=True):
        if line in (b"\r\n", b"\n"):
            break
        if line[:1] in (b" ", b"\t") and current:
            current.append(line)
            continue
        if current and include:
            out.extend(current)
        current = [line]
        m = _HEADER_LINE.match(line)
        name = m.group(1).strip().decode("ascii", "replace").lower() if m else ""
        include = (name in wanted) == keep
    if current and include:
        out.extend(current)
    return b"".join(out) + b"\r\n"


def section_bytes(raw: bytes, root: Part, section: Section) -> bytes | None:
    """The bytes a BODY[section] names, or None when the part does not exist (→ NIL)."""
    part = find_part(root, section.path)
    if part is None:
        return None
    if section.text in ("HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT"):
        # These refer to a message: the root, or the one a message/rfc822 part holds.
        if section.path:
            if not (part.is_message and part.children):
                return None
            part = part.children[0]
        if section.text == "TEXT":
            return raw[part.body_start : part.body_end]
        block = raw[part.header_start : part.body_start]
        if section.text == "HEADER":
            return block
        return filter_header(block, section.fields, keep=section.text == "HEADER.FIELDS")
    if section.text == "MIME":
        return raw[part.header_start : part.body_start]
    if not section.path:
        return raw
    return raw[part.body_start : part.body_end]


def _cut(data: bytes, partial: tuple[int, int] | None) -> bytes:
    if partial is None:
        return data
    start, length = partial
    return data[start : start + length]


def internal_date(m: MessageInfo) -> bytes:
    d = m.internal_date
    offset = d.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    date = f"{d.day:02d}-{MONTHS[d.month - 1]}-{d.year:04d}"
    text = f"{date} {d.hour:02d}:{d.minute:02d}:{d.second:02d} {sign}{minutes // 60:02d}{minutes % 60:02d}"
    return responses.quoted(text)


def _data(data: bytes, binary: bool = False) -> bytes:
    """A literal for message data (clients expect them; bytes need no escaping). NUL may
    only travel in a literal8 (RFC 9051 §4.3, RFC 3516 §4.2), which only BINARY asks for:
    elsewhere each NUL goes out as 0x80, keeping every size and offset."""
    if b"\x00" not in data:
        return responses.literal(data)
    if binary:
        return responses.literal(data, literal8=True)
    return responses.literal(data.replace(b"\x00", b"\x80"))


# --- the command -----------------------------------------------------------------------


@command("FETCH", SELECTED_ONLY, uid=True)
async def fetch(session: Session, cmd: Command) -> Reply | None:
    reader = cmd.reader
    seqset = parse_sequence_set(reader)
    reader.sp()
    request = parse_fetch(reader)
    sel = session.selected
    assert sel is not None
    if request.vanished and not (cmd.uid and session.qresync and request.changed_since is not None):
        raise SyntaxError_("VANISHED needs UID FETCH, QRESYNC enabled and CHANGEDSINCE")
    if request.changed_since is not None or any(i.name == "MODSEQ" for i in request.items):
        session.enable_condstore()
    uids = resolve(seqset, sel, cmd.uid, session.saved_search)
    store = session.store
    if request.vanished and request.changed_since is not None:
        changes = store.changes_since(sel.mailbox_id, request.changed_since)
        wanted: set[int] = set()
        # "*" is taken as unbounded here: after the highest messages were expunged, the
        # largest UID in use is below them, yet a client asking "1:*" wants to hear of them.
        unbounded = max([sel.max_uid, *changes.vanished])
        for lo, hi in seqset.ranges:
            a = unbounded if lo < 0 else lo
            b = unbounded if hi < 0 else hi
            wanted.update(u for u in changes.vanished if min(a, b) <= u <= max(a, b))
        if wanted:
            from mailsrv.imapserver.session import uid_set

            session.write_untagged(b"VANISHED", b"(EARLIER)", uid_set(sorted(wanted)))
    infos: list[MessageInfo] = []
    if len(uids) > 32:
        by_uid = {m.uid: m for m in store.messages(sel.mailbox_id)}
        found = (by_uid.get(uid) for uid in uids)
    else:
        found = (store.message(sel.mailbox_id, uid) for uid in uids)
    # A message expunged by another session has nothing to say (RFC 9051 §7.5.1).
    infos = [m for m in found if m is not None]
    if request.changed_since is not None:
        infos = [m for m in infos if m.modseq > request.changed_since]
    seen_now: dict[int, MessageInfo] = {}
    if request.sets_seen and not sel.readonly:
        unseen = [m.uid for m in infos if "\\Seen" not in m.flags]
        if unseen:
            result = await store.store_flags(sel.mailbox_id, unseen, FlagMode.ADD, ["\\Seen"], origin=session)
            seen_now = {m.uid: m for m in result.changed}
    needs_file = request.needs_file
    names = frozenset(i.name for i in request.items)
    # Responses go out in batches: one transport write per FETCH line costs more than the
    # line itself for small items. The batch is written before any wait, so nothing else
    # can come between its lines and later ones.
    batch: list[bytes] = []
    batched = 0
    for m in infos:
        m = seen_now.get(m.uid, m)
        msn = sel.msn(m.uid)
        if msn is None:
            continue
        raw = b""
        if needs_file:
            try:
                if m.size <= INLINE_READ_LIMIT:
                    raw = store.read(m.message_id)
                else:
                    _write_batch(session, batch)
                    batched = 0
                    raw = await store.read_async(m.message_id)
            except FileNotFoundError:
                # Expunged by another session while we worked: say nothing about it
                # (RFC 9051 §7.5.1 lets the server omit messages expunged meanwhile).
                continue
        line = responses.untagged(
            b"%d" % msn, b"FETCH", _render(session, request, names, m, raw, cmd.uid, m.uid in seen_now)
        )
        batch.append(line)
        batched += len(line)
        if batched >= _BATCH_BYTES:
            _write_batch(session, batch)
            batched = 0
    _write_batch(session, batch)
    return None


# FETCH responses are written to the transport in pieces of about this size.
_BATCH_BYTES = 64 * 1024


def _write_batch(session: Session, batch: list[bytes]) -> None:
    if batch:
        session.write(b"".join(batch))
        batch.clear()


def _render(
    session: Session,
    request: FetchRequest,
    names: frozenset[str],
    m: MessageInfo,
    raw: bytes,
    uid_cmd: bool,
    seen_changed: bool,
) -> bytes:
    items: list[bytes] = []
    utf8 = session.utf8
    tree: Part | None = None

    def part_tree() -> Part:
        nonlocal tree
        if tree is None:
            tree = session.store.part_tree(m.message_id)
        return tree

    if uid_cmd and "UID" not in names:
        items += [b"UID", b"%d" % m.uid]
    want_flags = "FLAGS" in names or seen_changed
    want_modseq = "MODSEQ" in names or (session.condstore and (request.changed_since is not None or seen_changed))
    for item in request.items:
        n = item.name
        if n == "UID":
            items += [b"UID", b"%d" % m.uid]
        elif n == "FLAGS":
            continue  # written once below
        elif n == "MODSEQ":
            continue
        elif n == "INTERNALDATE":
            items += [b"INTERNALDATE", internal_date(m)]
        elif n == "RFC822.SIZE":
            items += [b"RFC822.SIZE", b"%d" % m.size]
        elif n == "ENVELOPE":
            env = session.rendered(
                m.message_id, f"imap-envelope-{utf8}", lambda: bodystructure.envelope(part_tree().envelope, utf8)
            )
            items += [b"ENVELOPE", env]
        elif n == "BODY":
            body = session.rendered(
                m.message_id, f"imap-body-{utf8}", lambda: bodystructure.body(part_tree(), False, utf8)
            )
            items += [b"BODY", body]
        elif n == "BODYSTRUCTURE":
            structure = session.rendered(
                m.message_id, f"imap-bodystructure-{utf8}", lambda: bodystructure.body(part_tree(), True, utf8)
            )
            items += [b"BODYSTRUCTURE", structure]
        elif n == "RFC822":
            items += [b"RFC822", _data(raw)]
        elif n == "RFC822.HEADER":
            root = part_tree()
            items += [b"RFC822.HEADER", _data(raw[root.header_start : root.body_start])]
        elif n == "RFC822.TEXT":
            root = part_tree()
            items += [b"RFC822.TEXT", _data(raw[root.body_start : root.body_end])]
        elif n == "BODY[]":
            assert item.section is not None
            data = section_bytes(raw, part_tree(), item.section)
            label = b"BODY[" + item.section.spec() + b"]"
            if item.partial is not None:
                label += b"<%d>" % item.partial[0]
            items += [label, responses.NIL if data is None else _data(_cut(data, item.partial))]
        elif n in ("BINARY", "BINARY.SIZE"):
            assert item.section is not None
            decoded = _binary(raw, part_tree(), item.section)
            if n == "BINARY.SIZE":
                items += [b"BINARY.SIZE[" + item.section.spec() + b"]", b"%d" % len(decoded)]
            else:
                label = b"BINARY[" + item.section.spec() + b"]"
                if item.partial is not None:
                    label += b"<%d>" % item.partial[0]
                items += [label, _data(_cut(decoded, item.partial), binary=True)]
    if want_flags:
        items += [b"FLAGS", _flags(session, m)]
    if want_modseq:
        items += [b"MODSEQ", b"(%d)" % m.modseq]
    return responses.paren(items)


def _flags(session: Session, m: MessageInfo) -> bytes:
    session.announce_keywords(m.flags)
    flags = m.flags
    sel = session.selected
    if not session.rev2 and sel is not None and m.uid in sel.recent:
        flags = flags | {"\\Recent"}
    return responses.flag_set_list(flags)


def _binary(raw: bytes, root: Part, section: Section) -> bytes:
    part = find_part(root, section.path)
    if part is None:
        raise UserError("no such body part", "NONEXISTENT")
    if part.is_multipart or (part is root and not section.path):
        return raw if not section.path else raw[part.body_start : part.body_end]
    decoded = decode_body(part, raw[part.body_start : part.body_end])
    if decoded is None:
        raise UserError(f"unknown content-transfer-encoding {part.encoding}", "UNKNOWN-CTE")
    return decoded
