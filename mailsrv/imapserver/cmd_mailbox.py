"""Mailbox commands: SELECT, EXAMINE, CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE,
STATUS, GETQUOTA, GETQUOTAROOT (LIST and LSUB live in cmd_list.py, APPEND in cmd_append.py).

Store exceptions become NO with a response code through `errors.from_store_error`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailsrv.imapserver import responses
from mailsrv.imapserver.commands import AUTHENTICATED_STATES, Command, Reply, command
from mailsrv.imapserver.errors import SyntaxError_, UserError, from_ops_error, from_store_error
from mailsrv.imapserver.reader import Reader
from mailsrv.imapserver.selected import SelectedMailbox
from mailsrv.ops import mail
from mailsrv.ops.errors import OpsError
from mailsrv.store.interfaces import SYSTEM_FLAGS, MailboxInfo, StoreError

if TYPE_CHECKING:
    from mailsrv.imapserver.session import Session


def mailbox_out(session: Session, name: str) -> bytes:
    return responses.mailbox(name, utf8=session.utf8)


def uid_ranges(r: Reader) -> list[tuple[int, int]]:
    """A sequence set of UIDs as inclusive ranges; "*" stands for the largest possible
    UID (QRESYNC known-uids, RFC 7162 §3.2.5)."""

    def value() -> int:
        if r.take(b"*"):
            return 2**32 - 1
        return r.nz_number()

    out: list[tuple[int, int]] = []
    while True:
        lo = value()
        hi = value() if r.take(b":") else lo
        out.append((min(lo, hi), max(lo, hi)))
        if not r.take(b","):
            return out


def _in_ranges(uid: int, ranges: list[tuple[int, int]] | None) -> bool:
    return ranges is None or any(lo <= uid <= hi for lo, hi in ranges)


# --- SELECT / EXAMINE ----------------------------------------------------------------------


@command("SELECT", AUTHENTICATED_STATES)
async def select(session: Session, cmd: Command) -> Reply | None:
    return _select(session, cmd, readonly=False)


@command("EXAMINE", AUTHENTICATED_STATES)
async def examine(session: Session, cmd: Command) -> Reply | None:
    return _select(session, cmd, readonly=True)


def write_flags(session: Session, sel: SelectedMailbox) -> None:
    """FLAGS and PERMANENTFLAGS: the system flags and the keywords in use (RFC 9051 §7.3.5)."""
    keywords = sorted(sel.keyword_names.values())
    session.write_untagged(b"FLAGS", responses.flag_list([*SYSTEM_FLAGS, *keywords]))
    permanent = b"()" if sel.readonly else responses.flag_list([*SYSTEM_FLAGS, *keywords])[:-1] + b" \\*)"
    session.write_untagged(b"OK", responses.resp_text("flags allowed", b"PERMANENTFLAGS " + permanent))


def _select(session: Session, cmd: Command, readonly: bool) -> Reply:
    r = cmd.reader
    name = r.mailbox()
    condstore = False
    qresync: tuple[int, int, list[tuple[int, int]] | None] | None = None
    if not r.at_end():
        r.sp()
        r.expect(b"(")
        while True:
            param = r.keyword()
            if param == "CONDSTORE":
                condstore = True
            elif param == "QRESYNC":
                if not session.qresync:
                    # RFC 7162 §3.2.5: QRESYNC must be ENABLEd first.
                    raise SyntaxError_("QRESYNC is not enabled")
                r.sp()
                r.expect(b"(")
                uidvalidity = r.nz_number()
                r.sp()
                modseq = r.number64()
                known: list[tuple[int, int]] | None = None
                if r.take(b" "):
                    if r.peek() != b"(":
                        known = uid_ranges(r)
                        r.take(b" ")
                    if r.peek() == b"(":
                        # seq-match-data: only an optimisation hint for us; parsed, unused.
                        r.expect(b"(")
                        uid_ranges(r)
                        r.sp()
                        uid_ranges(r)
                        r.expect(b")")
                r.expect(b")")
                qresync = (uidvalidity, modseq, known)
            else:
                raise SyntaxError_(f"unknown SELECT parameter {param}")
            if r.take(b")"):
                break
            r.sp()
    r.end()

    had_selection = session.selected is not None
    if had_selection:
        session.unselect()
        if session.rev2 or session.qresync:
            # RFC 9051 §6.3.2 / RFC 7162 §3.2.11: tell where the old mailbox's updates end.
            session.write_untagged(b"OK", responses.resp_text("previous mailbox closed", "CLOSED"))
    store = session.store
    try:
        info = store.mailbox(name)
        messages = store.messages(info.id)
    except StoreError as e:
        raise from_store_error(e) from None
    if condstore:
        session.enabled.add("CONDSTORE")  # announced below with the other data
    claim = None
    if not session.rev2:
        mailbox_id = info.id

        def claim(uid: int) -> int:
            return store.claim_recent(mailbox_id, uid, claim=not readonly)

    sel = SelectedMailbox(info, messages, readonly, claim)
    write_flags(session, sel)
    session.write_untagged(b"%d" % len(messages), b"EXISTS")
    if not session.rev2:
        session.write_untagged(b"%d" % len(sel.recent), b"RECENT")
        first_unseen = next((i for i, m in enumerate(messages, 1) if "\\Seen" not in m.flags), None)
        if first_unseen is not None:
            session.write_untagged(b"OK", responses.resp_text("first unseen", f"UNSEEN {first_unseen}"))
    session.write_untagged(b"OK", responses.resp_text("UIDs valid", f"UIDVALIDITY {info.uidvalidity}"))
    session.write_untagged(b"OK", responses.resp_text("predicted next UID", f"UIDNEXT {info.uidnext}"))
    if session.condstore:
        session.write_untagged(b"OK", responses.resp_text("highest", f"HIGHESTMODSEQ {info.highest_modseq}"))
    if session.rev2:
        # RFC 9051 §6.3.2: a LIST response for the selected mailbox.
        session.write_untagged(b"LIST", b"()", b'"/"', mailbox_out(session, info.name))
    session.select(sel)
    if qresync is not None and qresync[0] == info.uidvalidity:
        _qresync_resync(session, info, qresync[1], qresync[2])
    return Reply(f"{'EXAMINE' if readonly else 'SELECT'} completed", "READ-ONLY" if readonly else "READ-WRITE")


def _qresync_resync(session: Session, info: MailboxInfo, modseq: int, known: list[tuple[int, int]] | None) -> None:
    """RFC 7162 §3.2.5.1: VANISHED (EARLIER) for UIDs expunged since `modseq`, then FETCH
    for messages changed since then."""
    from mailsrv.imapserver.session import uid_set

    changes = session.store.changes_since(info.id, modseq)
    vanished = sorted(u for u in changes.vanished if _in_ranges(u, known))
    if vanished:
        session.write_untagged(b"VANISHED", b"(EARLIER)", uid_set(vanished))
    sel = session.selected
    assert sel is not None
    for m in sorted(changes.changed, key=lambda m: m.uid):
        msn = sel.msn(m.uid)
        if msn is not None:
            session.write_untagged(b"%d" % msn, b"FETCH", session.flags_fetch_items(m))


# --- CREATE / DELETE / RENAME / SUBSCRIBE ------------------------------------------------------


def _strip_separator(name: str) -> str:
    # RFC 9051 §6.3.4: a trailing separator only says the client intends to create children.
    return name.rstrip("/") or name


@command("CREATE", AUTHENTICATED_STATES)
async def create(session: Session, cmd: Command) -> Reply | None:
    name = _strip_separator(cmd.reader.mailbox())
    cmd.reader.end()
    try:
        await mail.create_mailbox(session.mail, name)
    except OpsError as e:
        raise from_ops_error(e) from None
    return None


@command("DELETE", AUTHENTICATED_STATES)
async def delete(session: Session, cmd: Command) -> Reply | None:
    name = cmd.reader.mailbox()
    cmd.reader.end()
    try:
        await mail.delete_mailbox(session.mail, name)
    except OpsError as e:
        raise from_ops_error(e) from None
    if session.selected is not None and session.selected.name == name:
        # Our own selected mailbox went away; RFC 9051 leaves this undefined; drop it.
        session.unselect()
    return None


@command("RENAME", AUTHENTICATED_STATES)
async def rename(session: Session, cmd: Command) -> Reply | None:
    r = cmd.reader
    old = r.mailbox()
    r.sp()
    new = _strip_separator(r.mailbox())
    r.end()
    try:
        await mail.rename_mailbox(session.mail, old, new)
    except OpsError as e:
        raise from_ops_error(e) from None
    sel = session.selected
    if sel is not None and old != "INBOX":
        if sel.name == old:
            sel.name = new
        elif sel.name.startswith(old + "/"):
            sel.name = new + sel.name[len(old) :]
    return None


@command("SUBSCRIBE", AUTHENTICATED_STATES)
async def subscribe(session: Session, cmd: Command) -> Reply | None:
    name = cmd.reader.mailbox()
    cmd.reader.end()
    try:
        await mail.set_subscribed(session.mail, name, True)
    except OpsError as e:
        raise from_ops_error(e) from None
    return None


@command("UNSUBSCRIBE", AUTHENTICATED_STATES)
async def unsubscribe(session: Session, cmd: Command) -> Reply | None:
    name = cmd.reader.mailbox()
    cmd.reader.end()
    try:
        await mail.set_subscribed(session.mail, name, False)
    except OpsError as e:
        raise from_ops_error(e) from None
    return None


# --- STATUS ------------------------------------------------------------------------------------

STATUS_ITEMS = (
    "MESSAGES",
    "UIDNEXT",
    "UIDVALIDITY",
    "UNSEEN",
    "DELETED",  # RFC 9051
    "SIZE",  # RFC 8438
    "HIGHESTMODSEQ",  # RFC 7162
    "RECENT",  # RFC 3501 (rev1)
    "DELETED-STORAGE",  # RFC 9208
    "APPENDLIMIT",  # RFC 7889
)


def status_items(r: Reader) -> list[str]:
    items = r.paren_list(r.keyword, allow_empty=False)
    for item in items:
        if item not in STATUS_ITEMS:
            raise SyntaxError_(f"unknown STATUS item {item}")
    return items


def status_response(session: Session, info: MailboxInfo, items: list[str]) -> bytes:
    """The ``* STATUS`` response line (also used by LIST-STATUS, RFC 5819)."""
    out: list[bytes] = []
    for item in items:
        if item == "MESSAGES":
            value = info.messages
        elif item == "UIDNEXT":
            value = info.uidnext
        elif item == "UIDVALIDITY":
            value = info.uidvalidity
        elif item == "UNSEEN":
            value = info.unseen
        elif item == "DELETED":
            value = info.deleted
        elif item == "SIZE":
            value = info.size
        elif item == "HIGHESTMODSEQ":
            value = info.highest_modseq
        elif item == "DELETED-STORAGE":
            value = (info.deleted_size + 1023) // 1024  # RFC 9208 §5.3: units of 1024 octets
        elif item == "APPENDLIMIT":
            value = session.server.config.limits.max_message_size
        else:  # RECENT: this session's own, or those no session has been told of yet
            sel = session.selected
            if sel is not None and sel.mailbox_id == info.id:
                value = len(sel.recent)
            else:
                floor = session.store.claim_recent(info.id, 0, claim=False)
                value = (
                    sum(1 for m in session.store.messages(info.id) if m.uid > floor) if floor < info.uidnext - 1 else 0
                )
        out += [item.encode("ascii"), b"%d" % value]
    return responses.untagged(b"STATUS", mailbox_out(session, info.name), responses.paren(out))


@command("STATUS", AUTHENTICATED_STATES)
async def status(session: Session, cmd: Command) -> Reply | None:
    r = cmd.reader
    name = r.mailbox()
    r.sp()
    items = status_items(r)
    r.end()
    try:
        info = session.store.mailbox(name)
    except StoreError as e:
        raise from_store_error(e) from None
    if "HIGHESTMODSEQ" in items:
        session.enable_condstore()  # RFC 7162 §3.1
    session.write(status_response(session, info, items))
    return None


# --- QUOTA (RFC 9208) ----------------------------------------------------------------------------


def _quota_response(session: Session) -> bytes:
    limit = session.store.quota_limit()
    if limit is None:
        return responses.untagged(b"QUOTA", b'""', b"()")
    used = (session.store.usage() + 1023) // 1024
    return responses.untagged(b"QUOTA", b'""', b"(STORAGE %d %d)" % (used, limit // 1024))


@command("GETQUOTAROOT", AUTHENTICATED_STATES)
async def getquotaroot(session: Session, cmd: Command) -> Reply | None:
    name = cmd.reader.mailbox()
    cmd.reader.end()
    try:
        session.store.mailbox(name)
    except StoreError as e:
        raise from_store_error(e) from None
    session.write_untagged(b"QUOTAROOT", mailbox_out(session, name), b'""')
    session.write(_quota_response(session))
    return None


@command("GETQUOTA", AUTHENTICATED_STATES)
async def getquota(session: Session, cmd: Command) -> Reply | None:
    root = cmd.reader.astring()
    cmd.reader.end()
    if root != "":
        raise UserError("no such quota root", "NONEXISTENT")
    session.write(_quota_response(session))
    return None
