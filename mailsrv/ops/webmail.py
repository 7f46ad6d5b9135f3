"""What the webmail does with an account's mail: the mailbox list, paged message lists (flat
or by conversation), search with a query string, the message view, flags, moves, delete,
archive and junk. The web adapter (`mailsrv/web/webmail/`) only adds sessions and JSON.

Messages are named by their store id (`MessageSummary.id`): it stays the same when a message
moves, so a list, an open message and a live update agree on it across moves. Every change
goes through `ops.mail` (hooks: junk training) with the `Webmail.origin` of the caller.

Costs: a list page is one range scan of the store's sorted listing (plus one thread lookup
per row when threaded); a search runs the one engine (`ops.search`) per mailbox, in slices
and in the thread pool, and its sorted matches are kept for paging (`_SearchCache`, keyed by
the mailboxes' HIGHESTMODSEQ, so any change there starts afresh); a message view reads the
file once in a pool thread.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import msgspec
from twisted.internet import threads
from twisted.internet.defer import Deferred

from mailsrv.ops import mail as mailops
from mailsrv.ops import search as engine
from mailsrv.ops.errors import InvalidInput, NotFound
from mailsrv.ops.webmail_query import parse_query
from mailsrv.ops.webmail_settings import get_settings, remote_allowed
from mailsrv.ops.webmail_view import MessageFacts, MessageView, build_view, message_html, part_content
from mailsrv.store import interfaces as si
from mailsrv.store.interfaces import AccountStore, MessageSummary, SortKey, SummaryAddress

if TYPE_CHECKING:
    from mailsrv.server import Server

_T = TypeVar("_T")
MAX_IDS = 1000  # messages named in one request
MAX_THREADED_ROUNDS = 20  # listing pages read to fill one page of conversations
SEARCH_CACHE = 64


# --- the context ----------------------------------------------------------------------------


@dataclass
class Webmail:
    """One account's webmail: the server, the account, the `origin` for store change
    listeners, and where slow work runs (`scheduler`: the search engine's; defaults to the
    reactor and the server's file pool)."""

    server: Server
    account: str
    origin: object | None = None
    scheduler: engine.Scheduler | None = None

    @property
    def store(self) -> AccountStore:
        return self.server.stores.open(self.account)

    def mail(self) -> mailops.MailContext:
        return mailops.MailContext(self.store, self.server.mail_hooks, self.origin)

    def in_thread(self, f: Callable[..., _T], *args: Any) -> Deferred[_T]:
        pools = self.server.pools
        if pools is not None:
            return pools.files(f, *args)
        return threads.deferToThread(f, *args)

    def search_scheduler(self) -> engine.Scheduler:
        if self.scheduler is not None:
            return self.scheduler
        pools = self.server.pools
        run = pools.files if pools is not None else threads.deferToThread
        return engine.ReactorScheduler(self.server.reactor, run)


# --- mailboxes ------------------------------------------------------------------------------


class MailboxView(msgspec.Struct, frozen=True):
    id: int
    name: str
    special_use: str  # "\\Sent", ... or ""
    messages: int
    unseen: int
    size: int
    subscribed: bool


async def mailboxes(wm: Webmail) -> list[MailboxView]:
    """Every mailbox with its counters, INBOX first, then by name."""
    boxes = await wm.store.mailboxes_async()
    boxes.sort(key=lambda b: (b.name != "INBOX", b.name.casefold()))
    return [MailboxView(b.id, b.name, b.special_use or "", b.messages, b.unseen, b.size, b.subscribed) for b in boxes]


async def mailbox_by_id(wm: Webmail, mailbox_id: int) -> si.MailboxInfo:
    try:
        return await wm.store.mailbox_by_id_async(mailbox_id)
    except si.MailboxNotFound:
        raise NotFound("no such mailbox") from None


async def special_mailbox(wm: Webmail, special_use: str) -> si.MailboxInfo:
    """The mailbox with this special-use (`\\Trash`...). Raises NotFound."""
    for box in await wm.store.mailboxes_async():
        if box.special_use == special_use:
            return box
    raise NotFound(f"no {special_use[1:]} mailbox")


# --- message lists --------------------------------------------------------------------------


class MessageItem(msgspec.Struct, frozen=True):
    """One row of a list: `thread_count` messages of its conversation are in this mailbox
    (1 when flat or alone), `thread_unread` of them unread."""

    id: int
    mailbox_id: int
    uid: int
    flags: tuple[str, ...]
    size: int
    received: int
    date: int
    subject: str
    from_: tuple[SummaryAddress, ...] = msgspec.field(name="from")
    to: tuple[SummaryAddress, ...]
    preview: str
    has_attachment: bool
    thread_id: int
    thread_count: int = 1
    thread_unread: int = 0


def item(m: MessageSummary, thread_count: int = 1, thread_unread: int | None = None) -> MessageItem:
    unread = ("\\Seen" not in m.flags) if thread_unread is None else thread_unread
    return MessageItem(
        id=m.id,
        mailbox_id=m.mailbox_id,
        uid=m.uid,
        flags=m.flags,
        size=m.size,
        received=m.internal_date,
        date=m.summary.date,
        subject=m.summary.subject,
        from_=m.summary.from_,
        to=m.summary.to,
        preview=m.summary.preview,
        has_attachment=m.summary.has_attachment,
        thread_id=m.thread_id,
        thread_count=thread_count,
        thread_unread=int(unread),
    )


class ListRequest(msgspec.Struct, kw_only=True):
    mailbox_id: int
    sort: SortKey = SortKey.DATE
    descending: bool = True
    count: int = 50
    anchor: str | None = None
    threaded: bool = False  # one row per conversation (date and arrival orders only)


class MessageList(msgspec.Struct, frozen=True):
    messages: list[MessageItem]
    next: str | None  # anchor of the next page, None after the last
    total: int  # messages in the mailbox


def _position(sort: SortKey, m: MessageSummary) -> tuple[int, int]:
    return (m.internal_date if sort == SortKey.ARRIVAL else m.summary.date, m.uid)


async def list_messages(wm: Webmail, req: ListRequest) -> MessageList:
    """One page of a mailbox. Threaded, a conversation shows as its first message in the
    order (the newest when descending), with the count of its messages in this mailbox.
    Raises NotFound, InvalidInput (count, anchor)."""
    store = wm.store
    await mailbox_by_id(wm, req.mailbox_id)
    if not 1 <= req.count <= 500:
        raise InvalidInput("count: 1 to 500", field="count")
    threaded = req.threaded and req.sort in (SortKey.DATE, SortKey.ARRIVAL)
    out: list[MessageItem] = []
    anchor = req.anchor
    total = 0
    for _ in range(MAX_THREADED_ROUNDS if threaded else 1):
        try:
            page = await store.list_messages(req.mailbox_id, req.sort, req.descending, req.count - len(out), anchor)
        except si.InvalidRequest as e:
            raise InvalidInput(str(e), field="anchor") from None
        total, anchor = page.total, page.next
        if not threaded:
            out.extend(item(m) for m in page.messages)
            break
        for m in page.messages:
            members = [t for t in await store.thread(m.thread_id) if t.mailbox_id == req.mailbox_id]
            if len(members) <= 1:
                out.append(item(m))
                continue
            mine = _position(req.sort, m)
            before = [t for t in members if (_position(req.sort, t) > mine) == req.descending and t.id != m.id]
            if before:
                continue  # shown with the conversation's earlier row
            unread = sum(1 for t in members if "\\Seen" not in t.flags)
            out.append(item(m, len(members), unread))
        if anchor is None or len(out) >= req.count:
            break
    return MessageList(out, anchor, total)


async def thread_messages(wm: Webmail, thread_id: int) -> list[MessageItem]:
    """Every message of a conversation, in all mailboxes, by sent date."""
    return [item(m) for m in await wm.store.thread(thread_id)]


# --- search ---------------------------------------------------------------------------------


class SearchRequest(msgspec.Struct, kw_only=True):
    query: str
    mailbox_id: int = 0  # where to search without an in: operator (0: every mailbox)
    offset: int = 0
    count: int = 50


class SearchResult(msgspec.Struct, frozen=True):
    messages: list[MessageItem]
    total: int
    next_offset: int | None
    mailbox_ids: list[int]  # the mailboxes searched


@dataclass(frozen=True)
class _Hit:
    received: int
    mailbox_id: int
    uid: int


class _SearchCache:
    """Sorted matches of recent searches, for paging; stale once a mailbox changes."""

    def __init__(self) -> None:
        self._entries: OrderedDict[tuple[Any, ...], list[_Hit]] = OrderedDict()

    def get(self, key: tuple[Any, ...]) -> list[_Hit] | None:
        hits = self._entries.get(key)
        if hits is not None:
            self._entries.move_to_end(key)
        return hits

    def put(self, key: tuple[Any, ...], hits: list[_Hit]) -> None:
        self._entries[key] = hits
        while len(self._entries) > SEARCH_CACHE:
            self._entries.popitem(last=False)


_search_cache = _SearchCache()


async def search(wm: Webmail, req: SearchRequest) -> SearchResult:
    """The messages matching `req.query` (`ops.webmail_query`), newest first. Raises
    InvalidInput, LimitExceeded (query), NotFound (in: a mailbox that does not exist)."""
    if req.offset < 0 or not 1 <= req.count <= 500:
        raise InvalidInput("offset at least 0, count 1 to 500", field="count")
    parsed = parse_query(req.query)
    store = wm.store
    if parsed.mailbox:
        try:
            boxes = [await store.mailbox_async(parsed.mailbox)]
        except si.MailboxNotFound:
            raise NotFound(f"no mailbox {parsed.mailbox}") from None
    elif req.mailbox_id and not parsed.all_mailboxes:
        boxes = [await mailbox_by_id(wm, req.mailbox_id)]
    else:
        boxes = await store.mailboxes_async()
    key = (
        wm.account,
        msgspec.json.encode(parsed.program),
        tuple((b.id, b.uidvalidity, b.highest_modseq) for b in boxes),
    )
    hits = _search_cache.get(key)
    if hits is None:
        hits = []
        for box in boxes:
            try:
                found = await engine.search(store, box.id, parsed.program, scheduler=wm.search_scheduler())
            except si.MailboxNotFound:
                continue  # deleted meanwhile
            hits.extend(_Hit(int(m.message.internal_date.timestamp()), box.id, m.message.uid) for m in found.matches)
        hits.sort(key=lambda h: (h.received, h.mailbox_id, h.uid), reverse=True)
        _search_cache.put(key, hits)
    page = hits[req.offset : req.offset + req.count]
    by_box: dict[int, list[int]] = {}
    for h in page:
        by_box.setdefault(h.mailbox_id, []).append(h.uid)
    summaries: dict[tuple[int, int], MessageSummary] = {}
    for mailbox_id, uids in by_box.items():
        for m in await store.summaries(mailbox_id, uids):
            summaries[(mailbox_id, m.uid)] = m
    items = [item(summaries[(h.mailbox_id, h.uid)]) for h in page if (h.mailbox_id, h.uid) in summaries]
    end = req.offset + len(page)
    return SearchResult(items, len(hits), end if end < len(hits) else None, [b.id for b in boxes])


# --- one message ----------------------------------------------------------------------------


async def find(wm: Webmail, message_id: int) -> MessageSummary:
    """The message with this store id wherever it is now. Raises NotFound."""
    found = await wm.store.find_message(message_id)
    if found is None:
        raise NotFound("no such message (moved away or deleted)")
    return found


async def _content(wm: Webmail, message_id: int) -> tuple[MessageSummary, bytes, Any]:
    m = await find(wm, message_id)
    tree = (await wm.store.part_trees([message_id])).get(message_id)
    if tree is None:
        raise NotFound("no such message")
    try:
        raw = await wm.store.read_async(message_id)
    except FileNotFoundError:
        raise NotFound("no such message") from None
    return m, raw, tree


async def open_message(wm: Webmail, message_id: int) -> MessageView:
    """The view of the message (see `ops.webmail_view`). Does not mark it read. Raises
    NotFound."""
    m, raw, tree = await _content(wm, message_id)
    settings = await get_settings(wm.store)
    sender = m.summary.from_[0].addr if m.summary.from_ else ""
    allowed = settings.remote == "always" or (bool(sender) and await remote_allowed(wm.store, sender))
    facts = MessageFacts(m.id, m.mailbox_id, m.uid, m.flags, m.size, m.internal_date, m.summary.date)
    authserv = wm.server.config.hostname.ascii
    return await wm.in_thread(build_view, raw, tree, facts, authserv, lambda _: allowed)


async def html_document(
    wm: Webmail, message_id: int, allow_remote: bool, part_url: Callable[[str], str], placeholder: str = ""
) -> tuple[str, int]:
    """The sanitised HTML of the message and its count of blocked remote resources."""
    _, raw, tree = await _content(wm, message_id)
    return await wm.in_thread(message_html, raw, tree, allow_remote, part_url, placeholder)


async def part(wm: Webmail, message_id: int, path: str) -> tuple[bytes, str, str]:
    """(decoded bytes, content type, file name) of one part. Raises NotFound."""
    _, raw, tree = await _content(wm, message_id)
    found = part_content(raw, tree, path)
    if found is None:
        raise NotFound("no such part")
    return found


async def raw_message(wm: Webmail, message_id: int) -> bytes:
    _, raw, _ = await _content(wm, message_id)
    return raw


# --- changes --------------------------------------------------------------------------------


async def _group(wm: Webmail, ids: Sequence[int]) -> dict[int, list[int]]:
    """UIDs by mailbox id of the messages `ids` (those that no longer exist are skipped)."""
    if not ids:
        raise InvalidInput("no messages named", field="ids")
    if len(ids) > MAX_IDS:
        raise InvalidInput(f"at most {MAX_IDS} messages at once", field="ids")
    groups: dict[int, list[int]] = {}
    for message_id in dict.fromkeys(ids):
        found = await wm.store.find_message(message_id)
        if found is not None:
            groups.setdefault(found.mailbox_id, []).append(found.uid)
    return groups


FlagAction = Literal["add", "remove"]


async def change_flags(wm: Webmail, ids: Sequence[int], action: FlagAction, flags: Sequence[str]) -> int:
    """Adds or removes flags/keywords on the messages; returns how many changed."""
    changed = 0
    for mailbox_id, uids in (await _group(wm, ids)).items():
        result = await mailops.change_flags(wm.mail(), mailbox_id, uids, action, flags)
        changed += len(result.changed)
    return changed


async def move(wm: Webmail, ids: Sequence[int], dest: str) -> int:
    """Moves the messages into `dest`; returns how many moved. Raises NotFound."""
    target = await _canonical(wm, dest)
    moved = 0
    for mailbox_id, uids in (await _group(wm, ids)).items():
        if (await mailbox_by_id(wm, mailbox_id)).name == target:
            continue
        result = await mailops.move_messages(wm.mail(), mailbox_id, uids, dest)
        moved += len(result.source_uids)
    return moved


async def _canonical(wm: Webmail, name: str) -> str:
    try:
        return (await wm.store.mailbox_async(name)).name
    except si.MailboxNotFound:
        raise NotFound(f"no mailbox {name}") from None


async def copy(wm: Webmail, ids: Sequence[int], dest: str) -> int:
    await _canonical(wm, dest)
    copied = 0
    for mailbox_id, uids in (await _group(wm, ids)).items():
        result = await mailops.copy_messages(wm.mail(), mailbox_id, uids, dest)
        copied += len(result.source_uids)
    return copied


async def delete(wm: Webmail, ids: Sequence[int]) -> int:
    """Moves the messages to Trash; those already in Trash are deleted for good."""
    trash = await special_mailbox(wm, "\\Trash")
    done = 0
    for mailbox_id, uids in (await _group(wm, ids)).items():
        if mailbox_id == trash.id:
            done += len(await mailops.delete_messages(wm.mail(), mailbox_id, uids))
        else:
            done += len((await mailops.move_messages(wm.mail(), mailbox_id, uids, trash.name)).source_uids)
    return done


async def archive(wm: Webmail, ids: Sequence[int]) -> int:
    return await move(wm, ids, (await special_mailbox(wm, "\\Archive")).name)


async def mark_junk(wm: Webmail, ids: Sequence[int], junk: bool) -> int:
    """Junk: $Junk set ($NotJunk removed), moved to Junk. Not junk: the other way round and
    moved to the Inbox. The junk filter trains on both through the ops.mail hooks."""
    groups = await _group(wm, ids)
    keyword, other = ("$Junk", "$NotJunk") if junk else ("$NotJunk", "$Junk")
    dest = (await special_mailbox(wm, "\\Junk")).name if junk else "INBOX"
    done = 0
    for mailbox_id, uids in groups.items():
        await mailops.change_flags(wm.mail(), mailbox_id, uids, "remove", [other])
        await mailops.change_flags(wm.mail(), mailbox_id, uids, "add", [keyword])
        if (await mailbox_by_id(wm, mailbox_id)).name != dest:
            done += len((await mailops.move_messages(wm.mail(), mailbox_id, uids, dest)).source_uids)
    return done


async def empty_mailbox(wm: Webmail, mailbox_id: int) -> int:
    """Deletes every message of the mailbox for good; returns how many."""
    box = await mailbox_by_id(wm, mailbox_id)
    uids = [m.uid for m in await wm.store.messages_async(box.id)]
    if not uids:
        return 0
    return len(await mailops.delete_messages(wm.mail(), mailbox_id, uids))


# --- live updates ---------------------------------------------------------------------------

MAX_EVENT_MESSAGES = 200  # messages described in one change; beyond, the client reloads the list


class ChangeItem(msgspec.Struct, frozen=True):
    """One entry of the account's change log (`store.interfaces.LoggedChange`) with the
    messages it added or changed as list rows (`messages`: new or moved-in messages, or the
    messages whose flags changed, as they are now; empty when over `MAX_EVENT_MESSAGES`, and
    `truncated` then says the client should reload what it shows)."""

    seq: int
    kind: si.ChangeKind
    mailbox_id: int = 0
    uids: tuple[int, ...] = ()
    to_mailbox_id: int = 0
    to_uids: tuple[int, ...] = ()
    names: tuple[str, ...] = ()
    counts: tuple[si.MailboxCounts, ...] = ()
    messages: list[MessageItem] = []
    truncated: bool = False


class ChangeBatch(msgspec.Struct, frozen=True):
    """`changes_after`'s answer; `reload`: the log no longer reaches back to the asked seq
    (or it is unknown): show everything afresh, then continue from `next_seq`."""

    changes: list[ChangeItem]
    next_seq: int
    more: bool
    reload: bool


async def last_change(wm: Webmail) -> int:
    return await wm.store.last_change()


async def changes_after(wm: Webmail, seq: int, limit: int = 200) -> ChangeBatch:
    """The account's changes after `seq` (at most `limit`), with list rows for the messages
    they added or changed. Raises InvalidInput for a bad limit."""
    if not 1 <= limit <= 1000 or seq < 0:
        raise InvalidInput("seq at least 0, limit 1 to 1000", field="limit")
    feed = await wm.store.changes_after(seq, limit)
    out = []
    for c in feed.changes:
        rows: list[MessageItem] = []
        truncated = False
        source: tuple[int, tuple[int, ...]] | None = None
        if c.kind in (si.ChangeKind.DELIVERED, si.ChangeKind.APPENDED, si.ChangeKind.FLAGS):
            source = (c.mailbox_id, c.uids)
        elif c.kind in (si.ChangeKind.MOVED, si.ChangeKind.COPIED):
            source = (c.to_mailbox_id, c.to_uids)
        if source is not None and source[1]:
            if len(source[1]) > MAX_EVENT_MESSAGES:
                truncated = True
            else:
                rows = [item(m) for m in await wm.store.summaries(source[0], source[1])]
        out.append(
            ChangeItem(
                seq=c.seq,
                kind=c.kind,
                mailbox_id=c.mailbox_id,
                uids=c.uids,
                to_mailbox_id=c.to_mailbox_id,
                to_uids=c.to_uids,
                names=c.names,
                counts=c.counts,
                messages=rows,
                truncated=truncated,
            )
        )
    return ChangeBatch(out, feed.next_seq, feed.more, feed.reload)
