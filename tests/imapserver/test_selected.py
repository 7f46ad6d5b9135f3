"""SelectedMailbox: numbering and the update queue (RFC 9051 §7.5.1 rules)."""

from __future__ import annotations

import datetime

from mailsrv.imapserver.selected import Exists, Expunged, FlagsUpdate, SelectedMailbox, Vanished
from mailsrv.store.interfaces import MailboxInfo, MessageInfo


def msg(uid: int, flags: frozenset[str] = frozenset()) -> MessageInfo:
    return MessageInfo(uid, uid, flags, 10, datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC), uid)


def mailbox(uids: list[int]) -> SelectedMailbox:
    info = MailboxInfo(1, "INBOX", None, 7, max(uids, default=0) + 1, 1, len(uids), 0, 0, 0, 0, True)
    return SelectedMailbox(info, [msg(u) for u in uids], readonly=False)


def test_numbering() -> None:
    sel = mailbox([3, 5, 9])
    assert (sel.msn(5), sel.msn(4), sel.uid(3), sel.count) == (2, None, 9, 3)


def test_expunge_held_back_but_additions_flow() -> None:
    sel = mailbox([1, 2, 3])
    sel.expunged((2,))
    sel.added(msg(4))
    sel.flags_changed(msg(3, frozenset({"\\Seen"})))
    out = sel.take_updates(allow_expunge=False, vanished=False)
    assert out == [Exists(4, 0), FlagsUpdate(3, msg(3, frozenset({"\\Seen"})))]
    assert sel.uids == [1, 2, 3, 4]
    out = sel.take_updates(allow_expunge=True, vanished=False)
    assert out == [Expunged(2, 2)]
    assert sel.uids == [1, 3, 4] and not sel.has_pending


def test_expunge_order_and_vanished() -> None:
    sel = mailbox(list(range(1, 11)))
    sel.expunged((2, 5, 9))
    assert sel.take_updates(True, vanished=False) == [Expunged(9, 9), Expunged(5, 5), Expunged(2, 2)]
    sel.expunged((1, 3, 4))
    assert sel.take_updates(True, vanished=True) == [Vanished((1, 3, 4))]
    assert sel.uids == [6, 7, 8, 10]


def test_exists_before_expunge_that_follows_it() -> None:
    sel = mailbox([1])
    sel.added(msg(2))
    sel.expunged((1,))
    assert sel.take_updates(True, vanished=False) == [Exists(2, 0), Expunged(1, 1)]


def test_large_expunge_is_linear() -> None:
    sel = mailbox(list(range(1, 100_001)))
    gone = sel.remove_now(list(range(1, 100_001, 2)))
    assert len(gone) == 50_000 and sel.count == 50_000 and sel.uid(1) == 2
