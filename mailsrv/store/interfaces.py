"""The narrow interface between protocols and the message store.

Protocol code (IMAP, SMTP delivery, webmail, web API) only ever uses what is declared here,
so that the embedded SQLite + files backend (`mailsrv.store.sqlite`) can later be replaced by
a PostgreSQL + object-store backend without touching protocol code.

Conventions every implementation keeps:

- Mailbox names are full hierarchical names with "/" as the separator, Unicode NFC, and
  "INBOX" spelled exactly so (it is matched case-insensitively on input, RFC 9051 §5.1).
- Flags are strings: system flags with their backslash and canonical case (`\\Seen`,
  `\\Answered`, `\\Flagged`, `\\Deleted`, `\\Draft`), keywords as given (compared
  case-insensitively, stored as first seen). `\\Recent` is not stored (IMAP4rev2 dropped it;
  the rev1 session computes it, from `claim_recent`, kept in memory).
- Every change to a mailbox's messages takes the mailbox's next modseq (RFC 7162 §3.1):
  one modseq per changed message; HIGHESTMODSEQ is the largest assigned so far.
- Every mutation returns a Deferred that fires once the change is durable. The change is
  committed (visible to reads) and change listeners are told of it, synchronously in the
  reactor thread, before that; a client may be told "done" only when the Deferred fires.
- Every read has a Deferred-returning form (`mailbox_async`, `messages_async`,
  `part_trees`, `read_async`, `scan_bodies`, `changes_since_async`, ...): `ops/` and the web
  use only those, so a backend whose index or bodies are remote needs no change above the
  store. The synchronous forms (`mailbox`, `messages`, `message`, `part_tree`, `read`,
  `changes_since`, ...) remain for the IMAP session's per-command hot paths (SELECT
  snapshots, FETCH, IDLE catch-up), which run on the local index; they go when IMAP moves.
- Errors are the exception classes below; anything else is a server error.

Summaries, for IMAP SORT/THREAD (RFC 5256) and webmail lists: `summaries(mailbox_id, uids)`
gives a `MessageSummary` per message (UID order) with the `Summary` taken from the header at
delivery: `from_`/`to`/`cc` (decoded display name + addr-spec), decoded `subject`, `date` (sent
date, epoch seconds UTC, internal date when the Date header is missing or bad: RFC 5256 §2.2
already applied), `message_id`, `in_reply_to`, `references` (ids without <>), `preview`,
`has_attachment`; plus `size`, `internal_date` (ARRIVAL), `flags` and `thread_id`. For SORT use
`summary.base_subject(subject)` (RFC 5256 §2.1, returns (base, is_reply); casefold it for the
SUBJECT key), `summary.date` for DATE and the addr-spec's local part for FROM/TO/CC;
THREAD=ORDEREDSUBJECT and REFERENCES need only these fields. `thread_id` is a coarser,
account-wide conversation id (see `store/thread.py`) for webmail, fixed at delivery.
`list_messages` pages through a mailbox in one of the `SortKey` orders.
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec
from twisted.internet.defer import Deferred

from mailsrv.message.part import Part
from mailsrv.message.source import MessageSource

SYSTEM_FLAGS = ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")

# The default mailboxes created for every new account, with their RFC 6154 special-use.
DEFAULT_MAILBOXES: tuple[tuple[str, str | None], ...] = (
    ("INBOX", None),
    ("Sent", "\\Sent"),
    ("Archive", "\\Archive"),
    ("Trash", "\\Trash"),
    ("Drafts", "\\Drafts"),
    ("Junk", "\\Junk"),
)

# How long an append's `delivery_id` is remembered: longer than any sender keeps retrying
# (RFC 5321 §4.5.4.1 suggests giving up after 4-5 days).
DELIVERY_ID_DAYS = 7


class StoreError(Exception):
    """Base of the store's own errors; the message is safe to show to a user."""


class MailboxNotFound(StoreError):
    pass


class MailboxExists(StoreError):
    pass


class MailboxNameInvalid(StoreError):
    pass


class MailboxNotEmptyOfChildren(StoreError):
    """Deleting a mailbox that has children and no \\Noselect semantics are wanted."""


class InvalidRequest(StoreError):
    """A malformed argument: a page size out of range, an anchor of another order."""


class OverQuota(StoreError):
    """The operation would take the account over its storage limit (RFC 9208 [OVERQUOTA])."""


class StoreUnavailable(StoreError):
    """The index or the message files cannot be read or written just now (disk full, I/O
    error, a locked or unreachable database). Retryable: SMTP answers 451, IMAP
    `NO [UNAVAILABLE]` (RFC 5530), the web 503. Nothing of the operation was applied."""


@dataclass(frozen=True)
class MailboxInfo:
    """A snapshot of a mailbox's counters, consistent at the moment it was read."""

    id: int
    name: str
    special_use: str | None
    uidvalidity: int
    uidnext: int
    highest_modseq: int
    messages: int
    unseen: int
    deleted: int
    size: int  # sum of message sizes (RFC 8438 STATUS SIZE)
    deleted_size: int  # sum of sizes of \Deleted messages (RFC 9208 DELETED-STORAGE)
    subscribed: bool


@dataclass(frozen=True)
class MessageInfo:
    """What a session keeps about one message of its selected mailbox."""

    uid: int
    modseq: int
    flags: frozenset[str]
    size: int
    internal_date: datetime.datetime  # timezone-aware
    message_id: int  # the store's own id of this message's file (each copy has its own)


@dataclass(frozen=True)
class NewMessage:
    """One message of an append batch: raw data, initial flags, internal date (None: now).
    A `MessageSource` (a spooled message) is copied into the store in chunks and parsed from
    the stored file, never held whole in memory."""

    data: bytes | MessageSource
    flags: tuple[str, ...] = ()
    internal_date: datetime.datetime | None = None
    # The fields of data's header exactly as `message.headerfields.header_fields(data)` gives
    # them, from a caller that parsed them already (the store then does not); bytes data only.
    header_fields: Sequence[tuple[str, str]] | None = None


@dataclass(frozen=True)
class AppendResult:
    """RFC 4315 APPENDUID data."""

    mailbox_id: int
    uidvalidity: int
    uid: int
    modseq: int


@dataclass(frozen=True)
class CopyResult:
    """RFC 4315 COPYUID data: source and destination UIDs in matching order."""

    uidvalidity: int
    source_uids: tuple[int, ...]
    dest_uids: tuple[int, ...]


@dataclass(frozen=True)
class FlagResult:
    """Outcome of a STORE: the messages whose flags changed (with their new flags and
    modseqs), and the UIDs that failed an UNCHANGEDSINCE test (RFC 7162 §3.1.3 MODIFIED)."""

    changed: tuple[MessageInfo, ...]
    modified: tuple[int, ...]


@dataclass(frozen=True)
class Changes:
    """Everything that changed in a mailbox after a modseq (for QRESYNC/CONDSTORE resync)."""

    changed: tuple[MessageInfo, ...]  # still present, modseq > since
    vanished: tuple[int, ...]  # UIDs expunged with modseq > since


@dataclass(frozen=True)
class MessageAdded:
    mailbox_id: int
    message: MessageInfo


@dataclass(frozen=True)
class FlagsChanged:
    mailbox_id: int
    message: MessageInfo


@dataclass(frozen=True)
class MessagesExpunged:
    mailbox_id: int
    uids: tuple[int, ...]
    modseq: int


@dataclass(frozen=True)
class MailboxesChanged:
    """A mailbox was created, renamed or deleted (or its subscription changed)."""

    names: tuple[str, ...]


Change = MessageAdded | FlagsChanged | MessagesExpunged | MailboxesChanged

# A change listener receives the change and the `origin` the mutating caller passed (a
# session object, or None), so a session can recognise its own changes.
ChangeListener = Callable[[Change, object | None], None]


class SummaryAddress(msgspec.Struct, frozen=True):
    """One address of a summary: display name RFC 2047-decoded ("" when none), addr-spec as
    written (the host may be a U-label; "" for an address without "@")."""

    name: str
    addr: str


class Summary(msgspec.Struct, frozen=True):
    """What a message list shows, taken from the header at delivery and never changed.

    `date` is the sent date in seconds since the epoch (UTC): the Date header, or the internal
    date when it is missing or unparsable (RFC 5256 §2.2). `subject` is RFC 2047-decoded.
    `preview` is the first ~200 visible characters of the first text part (HTML rendered to
    text, quoted lines dropped, whitespace collapsed). Message ids are given without angle
    brackets; `references` keeps the newest 50.
    """

    from_: tuple[SummaryAddress, ...] = msgspec.field(name="from")
    to: tuple[SummaryAddress, ...]
    cc: tuple[SummaryAddress, ...]
    subject: str
    date: int
    has_attachment: bool
    preview: str
    message_id: str
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]


class MessageSummary(msgspec.Struct, frozen=True):
    """One message as a list view (webmail, IMAP SORT/THREAD) sees it.

    `id` is the store's stable id of the message: kept when it is moved to another mailbox
    (a copy gets a new id). `thread_id` groups a conversation account-wide; it is assigned at
    delivery (see `AccountStore.list_messages`) and never changes. `flags` are sorted."""

    id: int
    mailbox_id: int
    uid: int
    modseq: int
    flags: tuple[str, ...]
    size: int
    internal_date: int  # seconds since the epoch
    thread_id: int
    summary: Summary


class SortKey(enum.StrEnum):
    """Orders of `AccountStore.list_messages`; ties are broken by UID."""

    DATE = "date"  # the summary's sent date (RFC 5256 DATE)
    ARRIVAL = "arrival"  # the internal date (RFC 5256 ARRIVAL)
    FROM = "from"  # casefolded display name of the first From, else its address
    SUBJECT = "subject"  # casefolded RFC 5256 base subject
    SIZE = "size"


class MessagePage(msgspec.Struct, frozen=True):
    """One page of a sorted listing. `next` is the anchor to pass for the following page
    (None after the last one); `total` is the mailbox's message count when the page was read.
    An anchor names a position in the order, not a message: messages inserted or removed
    meanwhile never make the following pages repeat or skip one that stayed."""

    messages: tuple[MessageSummary, ...]
    next: str | None
    total: int


class ChangeKind(enum.StrEnum):
    """What an entry of the account's change log records."""

    DELIVERED = "delivered"  # new mail: a delivery (SMTP, LMTP, the queue's DSNs)
    APPENDED = "appended"  # a client stored a message (IMAP APPEND, a draft)
    COPIED = "copied"
    MOVED = "moved"  # out of `mailbox_id`/`uids` into `to_mailbox_id`/`to_uids`
    FLAGS = "flags"
    EXPUNGED = "expunged"
    MAILBOXES = "mailboxes"  # created, renamed, deleted or (un)subscribed: `names`


class MailboxCounts(msgspec.Struct, frozen=True):
    """A mailbox's counters right after a change (what a folder list shows)."""

    mailbox_id: int
    name: str
    messages: int
    unseen: int
    size: int
    highest_modseq: int


class LoggedChange(msgspec.Struct, frozen=True):
    """One entry of the account's change log, written in the transaction of the change.

    `seq` numbers the account's changes 1, 2, 3... in commit order. `uids` are in
    `mailbox_id` at `modseq`; `counts` has the counters of every mailbox the change touched
    (a deleted mailbox has none). A deleted mailbox's messages are not listed one by one."""

    seq: int
    kind: ChangeKind
    time: int  # seconds since the epoch
    mailbox_id: int = 0
    uids: tuple[int, ...] = ()
    modseq: int = 0
    to_mailbox_id: int = 0
    to_uids: tuple[int, ...] = ()
    names: tuple[str, ...] = ()
    counts: tuple[MailboxCounts, ...] = ()


class ChangeFeed(msgspec.Struct, frozen=True):
    """The answer to `changes_after(seq)`: the entries after `seq` in order (at most the
    limit asked), and `next_seq` to ask from next time. `reload` is True when the entries
    after `seq` are no longer all kept (the log was trimmed) or `seq` is unknown (ahead of
    the log): the consumer must read the state afresh and continue from `next_seq`."""

    changes: tuple[LoggedChange, ...]
    next_seq: int
    more: bool
    reload: bool


class FlagMode:
    ADD = "add"
    REMOVE = "remove"
    REPLACE = "replace"


class AccountStore(Protocol):
    """One account's mailboxes and messages."""

    @property
    def account(self) -> str: ...

    # --- Mailboxes -----------------------------------------------------------------------
    def mailboxes(self) -> list[MailboxInfo]:
        """All mailboxes, sorted by name."""

    def mailbox(self, name: str) -> MailboxInfo:
        """Raises MailboxNotFound."""

    def mailbox_by_id(self, mailbox_id: int) -> MailboxInfo:
        """Raises MailboxNotFound."""

    def create_mailbox(self, name: str, special_use: str | None = None) -> Deferred[MailboxInfo]:
        """Creates the mailbox (and missing parents). Raises MailboxExists, MailboxNameInvalid."""

    def rename_mailbox(self, old: str, new: str) -> Deferred[None]:
        """Renames it and its children. Renaming INBOX moves its messages to `new` and leaves
        INBOX empty (RFC 9051 §6.3.6). Raises MailboxNotFound, MailboxExists."""

    def delete_mailbox(self, name: str) -> Deferred[None]:
        """Deletes the mailbox and its messages; children are kept (RFC 9051 §6.3.5 allows
        refusing; we delete only the named one). INBOX cannot be deleted."""

    def set_subscribed(self, name: str, subscribed: bool) -> Deferred[None]:
        """Subscriptions may name mailboxes that do not exist (RFC 9051 §6.3.7)."""

    def subscriptions(self) -> list[str]: ...

    def mailboxes_async(self) -> Deferred[list[MailboxInfo]]: ...

    def mailbox_async(self, name: str) -> Deferred[MailboxInfo]:
        """Fails with MailboxNotFound."""

    def mailbox_by_id_async(self, mailbox_id: int) -> Deferred[MailboxInfo]:
        """Fails with MailboxNotFound."""

    def subscriptions_async(self) -> Deferred[list[str]]: ...

    # --- Messages ------------------------------------------------------------------------
    def messages(self, mailbox_id: int) -> list[MessageInfo]:
        """All messages of the mailbox in UID order (a session's SELECT snapshot)."""

    def message(self, mailbox_id: int, uid: int) -> MessageInfo | None: ...

    def messages_async(self, mailbox_id: int) -> Deferred[list[MessageInfo]]:
        """`messages`, through a Deferred."""

    def message_async(self, mailbox_id: int, uid: int) -> Deferred[MessageInfo | None]: ...

    def append(
        self,
        mailbox: str,
        data: bytes | MessageSource,
        flags: Iterable[str] = (),
        internal_date: datetime.datetime | None = None,
        origin: object | None = None,
        *,
        delivery: bool = False,
        delivery_id: str | None = None,
        header_fields: Sequence[tuple[str, str]] | None = None,
    ) -> Deferred[AppendResult]:
        """Stores a message durably (file + fsync, directory fsync, index commit), then
        fires. `delivery` marks new mail (logged as DELIVERED, not APPENDED). Raises (through
        the Deferred) MailboxNotFound, OverQuota, StoreUnavailable. `header_fields`: see
        `NewMessage` (optional; saves the store parsing a header the caller parsed).

        `delivery_id` (an SMTP transaction and recipient, a queue id) makes the append
        idempotent: an append with an id the account already stored (within
        `DELIVERY_ID_DAYS`) stores nothing and returns the first append's result."""

    def append_many(
        self, mailbox: str, messages: Sequence[NewMessage], origin: object | None = None, *, delivery: bool = False
    ) -> Deferred[tuple[AppendResult, ...]]:
        """Appends all of `messages` atomically (RFC 3502 MULTIAPPEND): every file is durable
        before one commit adds every row, so observers see all of them or none; UIDs are
        consecutive, in the given order. Raises like `append`; on failure nothing is added."""

    def copy(
        self, source_mailbox_id: int, uids: Sequence[int], dest: str, origin: object | None = None
    ) -> Deferred[CopyResult]:
        """Copies messages (UIDs that do not exist are skipped). OverQuota when the copies
        would exceed the limit."""

    def move(
        self, source_mailbox_id: int, uids: Sequence[int], dest: str, origin: object | None = None
    ) -> Deferred[CopyResult]:
        """RFC 6851 MOVE: copy then expunge from the source, atomically for observers."""

    def store_flags(
        self,
        mailbox_id: int,
        uids: Sequence[int],
        mode: str,
        flags: Iterable[str],
        unchanged_since: int | None = None,
        origin: object | None = None,
    ) -> Deferred[FlagResult]:
        """Changes flags; messages whose flags do not change keep their modseq."""

    def expunge(
        self, mailbox_id: int, uids: Sequence[int] | None = None, origin: object | None = None
    ) -> Deferred[tuple[int, ...]]:
        """Removes \\Deleted messages (limited to `uids` when given); returns expunged UIDs."""

    def changes_since(self, mailbox_id: int, modseq: int) -> Changes: ...

    def changes_since_async(self, mailbox_id: int, modseq: int) -> Deferred[Changes]: ...

    def read(self, message_id: int, start: int = 0, length: int | None = None) -> bytes:
        """Bytes of the raw message file (ranged). Small and inline; large bodies should use
        `read_async`."""

    def read_async(self, message_id: int, start: int = 0, length: int | None = None) -> Deferred[bytes]: ...

    def part_tree(self, message_id: int) -> Part:
        """The parsed part tree stored at delivery (cached)."""

    def part_trees(self, message_ids: Sequence[int]) -> Deferred[dict[int, Part]]:
        """The part trees of these messages (at most 1,000 ids); ids of messages that no
        longer exist are left out."""

    def scan_bodies(self, message_ids: Sequence[int], match: Callable[[int, bytes], bool]) -> Deferred[list[int]]:
        """Reads each message's raw bytes where the bodies are (the files pool here) and
        calls `match(message_id, raw)` there, off the reactor thread; fires with the ids it
        accepted, in the given order. Messages that no longer exist are skipped. `match`
        must touch nothing but its arguments and data it owns."""

    # --- Summaries and sorted listing (webmail lists, IMAP SORT/THREAD) -------------------
    def list_messages(
        self,
        mailbox_id: int,
        sort: SortKey = SortKey.ARRIVAL,
        descending: bool = False,
        count: int = 50,
        anchor: str | None = None,
    ) -> Deferred[MessagePage]:
        """One page of the mailbox in the given order (ties by UID), starting after `anchor`
        (None: the first page). `count` is 1 to 1000. Raises MailboxNotFound, InvalidRequest
        (a bad count, or an anchor that is malformed or from another order)."""

    def summaries(self, mailbox_id: int, uids: Sequence[int] | None = None) -> Deferred[list[MessageSummary]]:
        """Summaries of the given messages (all when None) in UID order; missing UIDs are
        skipped."""

    def find_message(self, message_id: int) -> Deferred[MessageSummary | None]:
        """The message with this stable id, in whichever mailbox it is now; None when it
        was expunged."""

    def thread(self, thread_id: int) -> Deferred[list[MessageSummary]]:
        """The messages of a conversation across all mailboxes, by sent date (at most 10,000)."""

    def claim_recent(self, mailbox_id: int, up_to_uid: int, claim: bool = True) -> int:
        """IMAP4rev1 \\Recent (RFC 3501 §2.3.2): the highest UID of the mailbox already
        given to a session as recent; the caller's recent messages are those above it up to
        `up_to_uid`, which it claims unless `claim` is False (EXAMINE)."""

    # --- Account change log (webmail push, SSE, webhooks) -------------------------------
    def changes_after(self, seq: int, limit: int = 1000) -> Deferred[ChangeFeed]:
        """The logged changes with a sequence number above `seq` (0: from the start of the
        kept log), at most `limit` (1 to 10,000), or `reload` (see ChangeFeed). A consumer
        that reconnects with the last `seq` it saw gets exactly the entries it missed.
        Listeners (`add_listener`) are the hint to ask again; the log is the truth."""

    def last_change(self) -> Deferred[int]:
        """The sequence number of the latest change (where a new consumer starts)."""

    # --- Account data (webmail settings, remembered answers) ---------------------------
    def get_data(self, namespace: str, key: str) -> Deferred[bytes | None]:
        """The value stored under (`namespace`, `key`), None when there is none. Account data is
        small per-account state of the applications (webmail settings, remembered answers):
        not mail, not in the change log, not counted in the quota."""

    def put_data(self, namespace: str, key: str, value: bytes | None) -> Deferred[None]:
        """Stores (None: deletes) the value; fires once durable. Raises InvalidRequest when a
        name is empty or longer than 1,000 characters or the value is over 1 MB."""

    def list_data(self, namespace: str, limit: int = 1000) -> Deferred[list[tuple[str, bytes]]]:
        """The (key, value) pairs of a namespace in key order, at most `limit` (1 to 10,000)."""

    # --- Quota (RFC 9208) ----------------------------------------------------------------
    def usage(self) -> int:
        """Total size in octets of all messages of the account."""

    def usage_async(self) -> Deferred[int]: ...

    def quota_limit(self) -> int | None:
        """Storage limit in octets, or None for no limit."""

    # --- Change feed ---------------------------------------------------------------------
    def add_listener(self, listener: ChangeListener) -> Callable[[], None]:
        """Registers a listener; returns the function that removes it."""


class StoreRegistry(Protocol):
    """Opens account stores on demand and keeps one instance per account in the process."""

    def open(self, account: str) -> AccountStore:
        """Creates the account's store (with DEFAULT_MAILBOXES) on first use."""

    def drain(self) -> Deferred[Any]:
        """Fires once every append running now has finished (the daemon stops after)."""

    def close_all(self) -> None: ...
