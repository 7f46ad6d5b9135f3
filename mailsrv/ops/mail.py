"""What a user does to the messages and mailboxes of an account: move, copy, flag, delete,
expunge, and create/rename/delete/subscribe mailboxes, with hooks others subscribe to.

IMAP (STORE, COPY, MOVE, EXPUNGE, CREATE, RENAME, DELETE, SUBSCRIBE) and the webmail call
these functions. Each takes a `MailContext` (the account's store, the hook registry and the
`origin` passed on to the store, so an IMAP session recognises its own changes in the store's
change feed), validates its arguments, performs the change through the store and then, once
the change is committed, publishes a typed hook event (`MessagesMoved`, `MessagesCopied`,
`FlagsChanged`, `MessagesExpunged`, `MailboxCreated`, `MailboxRenamed`, `MailboxDeleted`,
`SubscriptionChanged`) to the subscribers of `MailHooks`.

Hooks are for reactions that belong to the application, not to a protocol: the junk filter
trains on moves into and out of the \\Junk mailbox and on the ``$Junk``/``$NotJunk`` keywords;
the webmail suggests rules from repeated moves. Subscribers run synchronously in the reactor
thread after the commit; they must be quick (queue real work) and their exceptions are
logged, never returned to the user whose change already succeeded.

Errors are the ops errors: `NotFound` (mailbox), `Exists`, `InvalidInput` (bad name or
flag), `PermissionDenied` (INBOX cannot be deleted or renamed onto), `HasChildren`,
`LimitExceeded` (quota), `StoreUnavailable` (retryable). Messages are named by UID within
a mailbox id; UIDs that no longer exist are skipped, as the store does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import msgspec
from twisted.logger import Logger

from mailsrv.ops.errors import (
    Exists,
    InvalidInput,
    LimitExceeded,
    NotFound,
    PermissionDenied,
    StoreUnavailable,
    UserError,
)
from mailsrv.store import interfaces as si
from mailsrv.store.interfaces import AccountStore, CopyResult, FlagMode, FlagResult, MailboxInfo

log = Logger()

FlagAction = Literal["add", "remove", "replace"]
_STORE_MODES = {"add": FlagMode.ADD, "remove": FlagMode.REMOVE, "replace": FlagMode.REPLACE}
MAX_FLAG_LENGTH = 255
MAX_FLAGS = 100  # flags named in one request
_ATOM_SPECIALS = frozenset('(){ %*"\\]')
_SYSTEM_BY_LOWER = {f.lower(): f for f in si.SYSTEM_FLAGS}


class HasChildren(UserError):
    """The mailbox has child mailboxes and this operation refuses them."""

    code = "hasChildren"


# --- hook events -----------------------------------------------------------------------


class _Transfer(msgspec.Struct, frozen=True):
    """Messages went from `from_mailbox` to `to_mailbox`, in matching order: `source_uids[i]`
    became `dest_uids[i]` (UIDs of `to_mailbox` under `uidvalidity`). The special-use
    attributes say "into Junk" whatever the mailbox is called."""

    account: str
    from_mailbox: str
    to_mailbox: str
    from_special_use: str | None
    to_special_use: str | None
    uidvalidity: int
    source_uids: tuple[int, ...]
    dest_uids: tuple[int, ...]


class MessagesMoved(_Transfer, frozen=True, tag="messagesMoved"):
    """The messages left the source mailbox."""


class MessagesCopied(_Transfer, frozen=True, tag="messagesCopied"):
    """The source mailbox keeps them."""


class FlagsChanged(msgspec.Struct, frozen=True, tag="flagsChanged"):
    """These messages gained `added` and lost `removed` (exactly; one event per distinct
    change, so "$Junk newly set on 3 and 7" is one event)."""

    account: str
    mailbox: str
    special_use: str | None
    uids: tuple[int, ...]
    added: tuple[str, ...]
    removed: tuple[str, ...]


class MessagesExpunged(msgspec.Struct, frozen=True, tag="messagesExpunged"):
    account: str
    mailbox: str
    uids: tuple[int, ...]


class MailboxCreated(msgspec.Struct, frozen=True, tag="mailboxCreated"):
    account: str
    mailbox: str


class MailboxRenamed(msgspec.Struct, frozen=True, tag="mailboxRenamed"):
    account: str
    old: str
    new: str


class MailboxDeleted(msgspec.Struct, frozen=True, tag="mailboxDeleted"):
    account: str
    mailbox: str


class SubscriptionChanged(msgspec.Struct, frozen=True, tag="subscriptionChanged"):
    account: str
    mailbox: str
    subscribed: bool


MailEvent = (
    MessagesMoved
    | MessagesCopied
    | FlagsChanged
    | MessagesExpunged
    | MailboxCreated
    | MailboxRenamed
    | MailboxDeleted
    | SubscriptionChanged
)
_E = TypeVar("_E", bound=MailEvent)


class MailHooks:
    """The subscriber registry: one per server, shared by every adapter."""

    def __init__(self) -> None:
        self._subscribers: dict[type[Any], list[Callable[[Any], None]]] = {}

    def subscribe(self, event_type: type[_E], handler: Callable[[_E], None]) -> Callable[[], None]:
        """Calls `handler` with every event of `event_type`; returns the unsubscribe function."""
        handlers = self._subscribers.setdefault(event_type, [])
        handlers.append(handler)

        def unsubscribe() -> None:
            if handler in handlers:
                handlers.remove(handler)

        return unsubscribe

    def wants(self, event_type: type[Any]) -> bool:
        return bool(self._subscribers.get(event_type))

    def publish(self, event: MailEvent) -> None:
        for handler in list(self._subscribers.get(type(event), ())):
            try:
                handler(event)
            except Exception:
                log.failure("mail hook {handler!r} failed on {event!r}", handler=handler, event=event)


@dataclass
class MailContext:
    """Who acts on which account: the store, the hooks, and the `origin` the store hands
    back to change listeners (an IMAP session, or None)."""

    store: AccountStore
    hooks: MailHooks = field(default_factory=MailHooks)
    origin: object | None = None

    @property
    def account(self) -> str:
        return self.store.account


# --- errors ------------------------------------------------------------------------------


@contextmanager
def _store_errors() -> Iterator[None]:
    """Store exceptions as ops errors (the store's message is safe to show)."""
    try:
        yield
    except si.MailboxNotFound as e:
        raise NotFound(str(e) or "no such mailbox") from e
    except si.MailboxExists as e:
        raise Exists(str(e) or "mailbox exists") from e
    except si.MailboxNameInvalid as e:
        raise InvalidInput(str(e) or "invalid mailbox name", field="mailbox") from e
    except si.OverQuota as e:
        raise LimitExceeded(str(e) or "over quota") from e
    except si.MailboxNotEmptyOfChildren as e:
        raise HasChildren(str(e) or "mailbox has children") from e
    except si.StoreUnavailable as e:
        raise StoreUnavailable(str(e) or "the mail store is unavailable, try again later") from e
    except si.StoreError as e:
        raise UserError(str(e) or "refused") from e


def _is_inbox(name: str) -> bool:
    return name.upper() == "INBOX"


def canonical_flags(flags: Iterable[str]) -> list[str]:
    """System flags in their canonical case, keywords as given; raises `InvalidInput` for
    an unknown system flag (\\Recent cannot be stored), a keyword that is not an IMAP atom
    (RFC 9051 §9 flag-keyword) or too long, or more than `MAX_FLAGS` flags."""
    out: list[str] = []
    for flag in flags:
        if len(out) >= MAX_FLAGS:
            raise InvalidInput(f"more than {MAX_FLAGS} flags", field="flags")
        if flag.startswith("\\"):
            canonical = _SYSTEM_BY_LOWER.get(flag.lower())
            if canonical is None:
                raise InvalidInput(f"unknown system flag {flag}", field="flags")
            out.append(canonical)
            continue
        if not flag or len(flag) > MAX_FLAG_LENGTH:
            raise InvalidInput("keyword empty or too long", field="flags")
        if any(not (0x20 < ord(c) < 0x7F) or c in _ATOM_SPECIALS for c in flag):
            raise InvalidInput(f"invalid keyword {flag!r}", field="flags")
        out.append(flag)
    return out


# --- messages ----------------------------------------------------------------------------


async def _mailbox_by_id(ctx: MailContext, mailbox_id: int) -> MailboxInfo:
    with _store_errors():
        return await ctx.store.mailbox_by_id_async(mailbox_id)


async def copy_messages(ctx: MailContext, mailbox_id: int, uids: Sequence[int], dest: str) -> CopyResult:
    """Copies the messages to `dest` (RFC 4315 COPYUID data in the result). Raises NotFound
    (either mailbox), LimitExceeded (quota)."""
    return await _transfer(ctx, mailbox_id, uids, dest, move=False)


async def move_messages(ctx: MailContext, mailbox_id: int, uids: Sequence[int], dest: str) -> CopyResult:
    """Moves the messages to `dest`, atomically for observers (RFC 6851). Raises NotFound,
    LimitExceeded."""
    return await _transfer(ctx, mailbox_id, uids, dest, move=True)


async def _transfer(ctx: MailContext, mailbox_id: int, uids: Sequence[int], dest: str, *, move: bool) -> CopyResult:
    source = await _mailbox_by_id(ctx, mailbox_id)
    with _store_errors():
        target = await ctx.store.mailbox_async(dest)
    with _store_errors():
        if move:
            result = await ctx.store.move(mailbox_id, uids, dest, origin=ctx.origin)
        else:
            result = await ctx.store.copy(mailbox_id, uids, dest, origin=ctx.origin)
    if result.source_uids:
        event = (MessagesMoved if move else MessagesCopied)(
            account=ctx.account,
            from_mailbox=source.name,
            to_mailbox=target.name,
            from_special_use=source.special_use,
            to_special_use=target.special_use,
            uidvalidity=result.uidvalidity,
            source_uids=tuple(result.source_uids),
            dest_uids=tuple(result.dest_uids),
        )
        ctx.hooks.publish(event)
    return result


async def change_flags(
    ctx: MailContext,
    mailbox_id: int,
    uids: Sequence[int],
    action: FlagAction,
    flags: Iterable[str],
    unchanged_since: int | None = None,
) -> FlagResult:
    """Adds, removes or replaces flags and keywords (``$Junk``, ``$NotJunk``...). Messages
    whose flags do not change keep their modseq; with `unchanged_since` (RFC 7162 §3.1.3)
    messages changed after it are left alone and listed in `FlagResult.modified`. Raises
    InvalidInput (bad flag or action), NotFound (mailbox)."""
    if action not in _STORE_MODES:
        raise InvalidInput(f"unknown flag action {action!r}", field="action")
    given = canonical_flags(flags)
    mailbox = await _mailbox_by_id(ctx, mailbox_id)
    before: dict[int, frozenset[str]] = {}
    if ctx.hooks.wants(FlagsChanged):
        before = await _flags_of(ctx.store, mailbox_id, uids)
    with _store_errors():
        result = await ctx.store.store_flags(
            mailbox_id, uids, _STORE_MODES[action], given, unchanged_since=unchanged_since, origin=ctx.origin
        )
    if before and result.changed:
        _publish_flag_changes(ctx, mailbox, before, result)
    return result


async def add_flags(ctx: MailContext, mailbox_id: int, uids: Sequence[int], flags: Iterable[str]) -> FlagResult:
    return await change_flags(ctx, mailbox_id, uids, "add", flags)


async def remove_flags(ctx: MailContext, mailbox_id: int, uids: Sequence[int], flags: Iterable[str]) -> FlagResult:
    return await change_flags(ctx, mailbox_id, uids, "remove", flags)


async def set_flags(ctx: MailContext, mailbox_id: int, uids: Sequence[int], flags: Iterable[str]) -> FlagResult:
    return await change_flags(ctx, mailbox_id, uids, "replace", flags)


async def _flags_of(store: AccountStore, mailbox_id: int, uids: Sequence[int]) -> dict[int, frozenset[str]]:
    """Flags before a change, for the hook event: per message for a few, one listing for many."""
    if len(uids) <= 64:
        out = {}
        for uid in uids:
            m = await store.message_async(mailbox_id, uid)
            if m is not None:
                out[uid] = m.flags
        return out
    wanted = set(uids)
    return {m.uid: m.flags for m in await store.messages_async(mailbox_id) if m.uid in wanted}


def _publish_flag_changes(
    ctx: MailContext, mailbox: MailboxInfo, before: dict[int, frozenset[str]], result: FlagResult
) -> None:
    groups: dict[tuple[tuple[str, ...], tuple[str, ...]], list[int]] = {}
    for m in result.changed:
        old = before.get(m.uid, frozenset())
        old_lower = {f.lower() for f in old}
        new_lower = {f.lower() for f in m.flags}
        added = tuple(sorted(f for f in m.flags if f.lower() not in old_lower))
        removed = tuple(sorted(f for f in old if f.lower() not in new_lower))
        if added or removed:
            groups.setdefault((added, removed), []).append(m.uid)
    for (added, removed), changed_uids in groups.items():
        ctx.hooks.publish(
            FlagsChanged(
                account=ctx.account,
                mailbox=mailbox.name,
                special_use=mailbox.special_use,
                uids=tuple(sorted(changed_uids)),
                added=added,
                removed=removed,
            )
        )


async def expunge(ctx: MailContext, mailbox_id: int, uids: Sequence[int] | None = None) -> tuple[int, ...]:
    """Removes the \\Deleted messages of the mailbox (only those among `uids` when given);
    returns the expunged UIDs. Raises NotFound."""
    mailbox = await _mailbox_by_id(ctx, mailbox_id)
    with _store_errors():
        gone = await ctx.store.expunge(mailbox_id, uids, origin=ctx.origin)
    if gone:
        ctx.hooks.publish(MessagesExpunged(account=ctx.account, mailbox=mailbox.name, uids=tuple(gone)))
    return gone


async def delete_messages(ctx: MailContext, mailbox_id: int, uids: Sequence[int]) -> tuple[int, ...]:
    """Deletes these messages for good (\\Deleted, then expunge of exactly them; other
    \\Deleted messages stay). Returns the UIDs removed. Raises NotFound."""
    if not uids:
        return ()
    await add_flags(ctx, mailbox_id, uids, ["\\Deleted"])
    return await expunge(ctx, mailbox_id, uids)


# --- mailboxes ---------------------------------------------------------------------------


async def create_mailbox(ctx: MailContext, name: str) -> MailboxInfo:
    """Creates the mailbox and missing parents. Raises Exists (INBOX always does),
    InvalidInput (the store's name rules: no empty level, control characters, "*" or "%")."""
    if _is_inbox(name):
        raise Exists("INBOX always exists")
    with _store_errors():
        info = await ctx.store.create_mailbox(name)
    ctx.hooks.publish(MailboxCreated(account=ctx.account, mailbox=info.name))
    return info


async def rename_mailbox(ctx: MailContext, old: str, new: str) -> None:
    """Renames the mailbox and its children; renaming INBOX moves its messages into `new`
    (RFC 9051 §6.3.6). Raises NotFound, Exists (also for INBOX as the new name),
    InvalidInput."""
    if _is_inbox(new):
        raise Exists("cannot rename to INBOX")
    with _store_errors():
        await ctx.store.rename_mailbox(old, new)
    ctx.hooks.publish(MailboxRenamed(account=ctx.account, old=old, new=new))


async def delete_mailbox(ctx: MailContext, name: str) -> None:
    """Deletes the mailbox and its messages (children are kept). Raises NotFound,
    PermissionDenied (INBOX), HasChildren when the store refuses."""
    if _is_inbox(name):
        raise PermissionDenied("INBOX cannot be deleted")
    with _store_errors():
        await ctx.store.mailbox_async(name)
        await ctx.store.delete_mailbox(name)
    ctx.hooks.publish(MailboxDeleted(account=ctx.account, mailbox=name))


async def set_subscribed(ctx: MailContext, name: str, subscribed: bool) -> None:
    """Subscribes or unsubscribes; the mailbox need not exist (RFC 9051 §6.3.7)."""
    if not name:
        raise InvalidInput("empty mailbox name", field="mailbox")
    with _store_errors():
        await ctx.store.set_subscribed(name, subscribed)
    ctx.hooks.publish(SubscriptionChanged(account=ctx.account, mailbox=name, subscribed=subscribed))
