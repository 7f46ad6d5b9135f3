"""STORE (RFC 9051 §6.4.6, RFC 7162 UNCHANGEDSINCE), COPY (§6.4.7, RFC 4315 COPYUID),
MOVE (RFC 6851) and EXPUNGE / UID EXPUNGE (§6.4.3, RFC 4315 §2.1).

Changes go through `mailsrv.ops.mail` (which publishes the hook events) with the session as
origin, so the session's own flag changes and expunges are answered here and never queued
back to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailsrv.imapserver import responses
from mailsrv.imapserver.commands import SELECTED_ONLY, Command, Reply, command
from mailsrv.imapserver.errors import UserError, from_ops_error
from mailsrv.imapserver.reader import Reader
from mailsrv.imapserver.sequence import SequenceSet, parse_sequence_set, resolve
from mailsrv.ops import mail
from mailsrv.ops.errors import OpsError

if TYPE_CHECKING:
    from mailsrv.imapserver.session import Session


def _writable(session: Session) -> None:
    sel = session.selected
    assert sel is not None
    if sel.readonly:
        raise UserError("mailbox is read-only (EXAMINE)", "READ-ONLY")


@dataclass(frozen=True)
class StoreRequest:
    seqset: SequenceSet
    mode: mail.FlagAction
    silent: bool
    flags: list[str]
    unchanged_since: int | None


_MODES: dict[str, mail.FlagAction] = {"FLAGS": "replace", "+FLAGS": "add", "-FLAGS": "remove"}


def parse_store(reader: Reader) -> StoreRequest:
    """sequence-set SP [modifiers SP] ("+"/"-")FLAGS[.SILENT] SP flags (RFC 9051 §6.4.6,
    RFC 7162 §3.1.3 UNCHANGEDSINCE)."""
    seqset = parse_sequence_set(reader)
    reader.sp()
    unchanged_since: int | None = None
    if reader.peek() == b"(":

        def modifier() -> None:
            nonlocal unchanged_since
            name = reader.keyword()
            if name != "UNCHANGEDSINCE":
                raise reader.error(f"unknown store modifier {name}")
            reader.sp()
            unchanged_since = reader.number64()

        reader.paren_list(modifier, allow_empty=False)
        reader.sp()
    action = reader.keyword()
    silent = action.endswith(".SILENT")
    base = action[: -len(".SILENT")] if silent else action
    if base not in _MODES:
        raise reader.error(f"expected FLAGS, +FLAGS or -FLAGS, got {action}")
    reader.sp()
    flags = reader.store_flags()
    reader.end()
    return StoreRequest(seqset, _MODES[base], silent, flags, unchanged_since)


@command("STORE", SELECTED_ONLY, uid=True)
async def store(session: Session, cmd: Command) -> Reply | None:
    request = parse_store(cmd.reader)
    seqset, silent, flags, unchanged_since = request.seqset, request.silent, request.flags, request.unchanged_since
    _writable(session)
    if unchanged_since is not None:
        session.enable_condstore()
    sel = session.selected
    assert sel is not None
    uids = resolve(seqset, sel, cmd.uid, session.saved_search)
    try:
        result = await mail.change_flags(session.mail, sel.mailbox_id, uids, request.mode, flags, unchanged_since)
    except OpsError as e:
        raise from_ops_error(e) from None
    changed = {m.uid: m for m in result.changed}
    modified = set(result.modified)
    # Report the new flags of every addressed message (unchanged ones too, as clients
    # expect), except under .SILENT; with CONDSTORE a changed message is always reported
    # with its MODSEQ (RFC 7162 §3.1.3).
    for uid in uids:
        if uid in modified:
            continue
        m = changed.get(uid)
        if m is None:
            if silent:
                continue
            m = session.store.message(sel.mailbox_id, uid)
            if m is None:
                continue
        elif silent and not session.condstore:
            continue
        msn = sel.msn(uid)
        if msn is None:
            continue
        if silent:
            items = [b"UID", b"%d" % m.uid, b"MODSEQ", b"(%d)" % m.modseq]
            session.write_untagged(b"%d" % msn, b"FETCH", responses.paren(items))
        else:
            session.write_untagged(b"%d" % msn, b"FETCH", session.flags_fetch_items(m))
    if modified:
        from mailsrv.imapserver.session import uid_set

        numbers = sorted(modified) if cmd.uid else sorted(n for n in (sel.msn(u) for u in modified) if n)
        return Reply("conditional store failed for some messages", "MODIFIED " + uid_set(numbers).decode())
    return None


async def _copy_or_move(session: Session, cmd: Command, move: bool) -> Reply | None:
    reader = cmd.reader
    seqset = parse_sequence_set(reader)
    reader.sp()
    target = reader.mailbox()
    reader.end()
    if move:
        _writable(session)
    sel = session.selected
    assert sel is not None
    uids = resolve(seqset, sel, cmd.uid, session.saved_search)
    if not uids:
        return Reply("no messages", None) if not cmd.uid else None
    try:
        if move:
            result = await mail.move_messages(session.mail, sel.mailbox_id, uids, target)
        else:
            result = await mail.copy_messages(session.mail, sel.mailbox_id, uids, target)
    except OpsError as e:
        raise from_ops_error(e, trycreate=True) from None
    from mailsrv.imapserver.session import uid_set

    code = None
    if result.source_uids:
        # Both sets in matching order (RFC 4315 §3); runs of consecutive UIDs are written as
        # ranges, which keeps a large COPY's response short without reordering anything.
        source = uid_set(list(result.source_uids)).decode()
        code = f"COPYUID {result.uidvalidity} {source} {uid_set(list(result.dest_uids)).decode()}"
    if move:
        # RFC 6851 §4.3: COPYUID in an untagged OK before the expunges.
        if code:
            session.write_untagged(b"OK", responses.resp_text("moved", code))
        session.announce_expunged(list(result.source_uids))
        return None
    return Reply("copied", code)


@command("COPY", SELECTED_ONLY, uid=True)
async def copy(session: Session, cmd: Command) -> Reply | None:
    return await _copy_or_move(session, cmd, move=False)


@command("MOVE", SELECTED_ONLY, uid=True)
async def move(session: Session, cmd: Command) -> Reply | None:
    return await _copy_or_move(session, cmd, move=True)


@command("EXPUNGE", SELECTED_ONLY, uid=True)
async def expunge(session: Session, cmd: Command) -> Reply | None:
    reader = cmd.reader
    sel = session.selected
    assert sel is not None
    limit: list[int] | None = None
    if cmd.uid:
        limit = resolve(parse_sequence_set(reader), sel, True, session.saved_search)
    reader.end()
    _writable(session)
    try:
        gone = await mail.expunge(session.mail, sel.mailbox_id, limit)
    except OpsError as e:
        raise from_ops_error(e) from None
    session.announce_expunged(list(gone))
    if session.condstore:
        info = session.store.mailbox_by_id(sel.mailbox_id)
        return Reply("expunged", f"HIGHESTMODSEQ {info.highest_modseq}")
    return None
