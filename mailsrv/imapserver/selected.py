"""The selected mailbox as one session sees it, and the changes it has not been told yet.

Invariant: `uids` (MSN-1 → UID, ascending) is exactly what the client believes the
mailbox holds. Changes from the store's feed are queued and applied only when the session
writes them (`take_updates`): EXISTS when new UIDs are appended, EXPUNGE/VANISHED when
UIDs are removed, FETCH for flag changes. Expunges are held back while the session may
not renumber messages (RFC 9051 §7.5.1), but later additions and flag changes still go
out: UIDs only grow, so appending keeps every earlier number valid.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass

from mailsrv.store.interfaces import MailboxInfo, MessageInfo

# Claims messages as \Recent up to a UID; returns the UID above which they are this session's.
RecentClaim = Callable[[int], int]


@dataclass(frozen=True)
class Exists:
    """The new message count, and how many of them are \\Recent at that same point (a
    RECENT must agree with the EXISTS just before it, not with later arrivals)."""

    count: int
    recent: int


@dataclass(frozen=True)
class Expunged:
    """One message removed: `msn` is its number just before removal."""

    msn: int
    uid: int


@dataclass(frozen=True)
class Vanished:
    uids: tuple[int, ...]


@dataclass(frozen=True)
class FlagsUpdate:
    msn: int
    message: MessageInfo


Update = Exists | Expunged | Vanished | FlagsUpdate


@dataclass(frozen=True)
class _Added:
    message: MessageInfo


@dataclass(frozen=True)
class _Flags:
    message: MessageInfo
    told: bool = False  # the session's own change, already answered by its STORE


@dataclass(frozen=True)
class _Removed:
    uids: tuple[int, ...]


_Pending = _Added | _Flags | _Removed


class SelectedMailbox:
    def __init__(
        self,
        info: MailboxInfo,
        messages: list[MessageInfo],
        readonly: bool,
        claim_recent: RecentClaim | None = None,
    ) -> None:
        self.mailbox_id = info.id
        self.name = info.name
        self.uidvalidity = info.uidvalidity
        self.readonly = readonly
        self.uids: list[int] = [m.uid for m in messages]
        # IMAP4rev1 \Recent (RFC 3501 §2.3.2): the messages this session is the first to be
        # told of (the store's `claim_recent` decides, across sessions).
        self._claim_recent = claim_recent
        self.recent: set[int] = set()
        if claim_recent is not None and self.uids:
            floor = claim_recent(self.uids[-1])
            self.recent = {u for u in self.uids if u > floor}
        # Keywords the client has been told in FLAGS: casefolded → as spelled, see `new_keywords`.
        self.keyword_names: dict[str, str] = {
            f.casefold(): f for m in messages for f in m.flags if not f.startswith("\\")
        }
        self._pending: list[_Pending] = []

    # --- numbering -----------------------------------------------------------------------
    @property
    def count(self) -> int:
        return len(self.uids)

    def msn(self, uid: int) -> int | None:
        """The message sequence number of `uid`, or None when the client does not know it."""
        i = bisect.bisect_left(self.uids, uid)
        if i < len(self.uids) and self.uids[i] == uid:
            return i + 1
        return None

    def uid(self, msn: int) -> int:
        """The UID at sequence number `msn` (1-based); IndexError outside 1..count."""
        if not 1 <= msn <= len(self.uids):
            raise IndexError(msn)
        return self.uids[msn - 1]

    @property
    def max_uid(self) -> int:
        return self.uids[-1] if self.uids else 0

    # --- the queue -----------------------------------------------------------------------
    def added(self, message: MessageInfo) -> None:
        self._pending.append(_Added(message))

    def flags_changed(self, message: MessageInfo, told: bool = False) -> None:
        """Queues a flag change. The session's own (`told`) are queued too, not to be
        written again but so that an older change queued before them is not written after
        them: the client must end with the newest flags (the highest modseq wins)."""
        self._pending.append(_Flags(message, told))

    def new_keywords(self, flags: frozenset[str] | set[str]) -> bool:
        """Whether `flags` hold a keyword the client was not told in FLAGS yet (then it is
        counted as told: the caller writes FLAGS now)."""
        new = {f.casefold(): f for f in flags if not f.startswith("\\") and f.casefold() not in self.keyword_names}
        if not new:
            return False
        self.keyword_names.update(new)
        return True

    def expunged(self, uids: tuple[int, ...]) -> None:
        self._pending.append(_Removed(uids))

    @property
    def has_pending(self) -> bool:
        return bool(self._pending)

    def remove_now(self, uids: tuple[int, ...] | list[int]) -> list[Expunged]:
        """Removes `uids` at once (the session's own EXPUNGE/MOVE) and says which numbers
        went, highest first so that each number is valid when its EXPUNGE is read."""
        gone: list[Expunged] = []
        # Highest first: removing a message never renumbers the ones below it, so each
        # number is its position in the list as it is now. One rebuild of the list keeps
        # a large expunge linear.
        for uid in sorted(set(uids), reverse=True):
            msn = self.msn(uid)
            if msn is not None:
                gone.append(Expunged(msn, uid))
        if gone:
            removed = {e.uid for e in gone}
            self.uids = [u for u in self.uids if u not in removed]
            self.recent -= removed
        return gone

    def take_updates(self, allow_expunge: bool, vanished: bool) -> list[Update]:
        """Applies queued changes and returns what to tell the client, in order. With
        `allow_expunge` False, removals stay queued. `vanished` groups removals into one
        VANISHED (QRESYNC, RFC 7162 §3.2.10) instead of EXPUNGEs."""
        out: list[Update] = []
        keep: list[_Pending] = []
        flags: dict[int, _Flags] = {}
        grew = False
        for change in self._pending:
            if isinstance(change, _Added):
                uid = change.message.uid
                if uid > self.max_uid:
                    self.uids.append(uid)
                    if self._claim_recent is not None and self._claim_recent(uid) < uid:
                        self.recent.add(uid)
                    grew = True
            elif isinstance(change, _Flags):
                seen = flags.get(change.message.uid)
                if seen is None or change.message.modseq >= seen.message.modseq:
                    flags[change.message.uid] = change
            elif allow_expunge:
                if grew:
                    # Numbers in an EXISTS must be told before expunges renumber them.
                    out.append(Exists(self.count, len(self.recent)))
                    grew = False
                gone = self.remove_now(change.uids)
                for e in gone:
                    flags.pop(e.uid, None)
                if vanished:
                    if gone:
                        out.append(Vanished(tuple(sorted(e.uid for e in gone))))
                else:
                    out.extend(gone)
            else:
                keep.append(change)
        self._pending = keep
        if grew:
            out.append(Exists(self.count, len(self.recent)))
        for uid, latest in sorted(flags.items()):
            msn = self.msn(uid)
            if msn is not None and not latest.told:
                out.append(FlagsUpdate(msn, latest.message))
        return out
