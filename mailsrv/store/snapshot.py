"""A kept copy of one mailbox's message list, brought up to date from the modseq it was
taken at (see `IndexReads.messages`)."""

from __future__ import annotations

from mailsrv.store.interfaces import (
    Changes,
    MessageInfo,
)


class Snapshot:
    """One mailbox's messages (by UID, ascending) as of `modseq`."""

    def __init__(self, uidvalidity: int, modseq: int, messages: dict[int, MessageInfo]) -> None:
        self.uidvalidity = uidvalidity
        self.modseq = modseq
        self.messages = messages

    def catch_up(self, changes: Changes) -> bool:
        """Applies the changes since `modseq`; False (snapshot unusable) when a changed row
        is neither known nor above every known UID, which cannot happen while UIDs only grow."""
        for uid in changes.vanished:
            self.messages.pop(uid, None)
        last = next(reversed(self.messages), 0)
        for m in changes.changed:  # ascending UIDs
            if m.uid in self.messages:
                self.messages[m.uid] = m
            elif m.uid > last:
                self.messages[m.uid] = m
                last = m.uid
            else:
                return False
        return True
