"""Leaving the selected state: CLOSE (RFC 9051 §6.4.1) and UNSELECT (RFC 3691, §6.4.2).

The selected-state commands proper (FETCH, STORE, SEARCH, COPY, MOVE, EXPUNGE) are in the
modules of the selected-state helper, registered through `registry.py`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailsrv.imapserver.commands import SELECTED_ONLY, Command, Reply, command
from mailsrv.imapserver.errors import from_store_error
from mailsrv.store.interfaces import StoreError

if TYPE_CHECKING:
    from mailsrv.imapserver.session import Session


@command("CLOSE", SELECTED_ONLY)
async def close(session: Session, cmd: Command) -> Reply | None:
    cmd.reader.end()
    sel = session.selected
    assert sel is not None
    # Drop the mailbox first: CLOSE sends no EXPUNGE responses (RFC 9051 §6.4.1).
    session.unselect()
    if not sel.readonly:
        try:
            await session.store.expunge(sel.mailbox_id, origin=session)
        except StoreError as e:
            raise from_store_error(e) from None
    return None


@command("UNSELECT", SELECTED_ONLY)
async def unselect(session: Session, cmd: Command) -> Reply | None:
    cmd.reader.end()
    session.unselect()
    return None
