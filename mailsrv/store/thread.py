"""Thread ids, assigned once at delivery from Message-ID, In-Reply-To and References.

A thread id is the store id of the first message of a conversation. A new message joins the
thread of the newest message id it refers to (References, then In-Reply-To, like RFC 5256
REFERENCES step 1 uses them), or of an earlier message that referred to *its* Message-ID (a
reply that arrived before its parent). Without any known reference, a reply or forward
(RFC 5256 §2.1: a prefix such as "Re:" was removed) joins the latest thread with the same base
subject of the last 30 days, as RFC 5256 step 5 gathers by subject. Otherwise it starts a
thread. Every id the message names is then recorded for the messages after it.

Ids are never rewritten: when a later message links two existing threads, it joins one of
them and the other keeps its id (IMAP THREAD=REFERENCES builds its exact trees from the
summary fields instead).
"""

from __future__ import annotations

import sqlite3

from mailsrv.store.interfaces import Summary
from mailsrv.store.summary import base_subject

SUBJECT_WINDOW = 30 * 86400  # seconds a base subject keeps gathering replies without references


def assign_thread(
    db: sqlite3.Connection, summary: Summary, message_id: int, subject: tuple[str, bool] | None = None
) -> int:
    """The thread id of a message being inserted (with store id `message_id`); records its
    ids and subject for later messages. Runs inside the inserting transaction. `subject`:
    `base_subject(summary.subject)` when the caller has it."""
    refs = [*summary.references, *(r for r in summary.in_reply_to if r not in summary.references)]
    own = summary.message_id
    thread: int | None = None
    for ref in reversed(refs):
        row = db.execute("SELECT thread_id FROM thread_ref WHERE msgid = ?", (ref,)).fetchone()
        if row is not None:
            thread = int(row[0])
            break
    base, is_reply = subject if subject is not None else base_subject(summary.subject)
    key = base.casefold()
    by_subject = not refs and is_reply and key  # the subject may decide when the own id does not
    recorded = False
    if thread is None and own:
        if by_subject:
            row = db.execute("SELECT thread_id FROM thread_ref WHERE msgid = ?", (own,)).fetchone()
        else:
            # Recorded at once as a new thread (the message's own) unless an earlier reply
            # recorded it: one statement for most messages (an upsert RETURNING the thread
            # cost more CPU than a SELECT and an INSERT).
            recorded = True
            inserted = db.execute(
                "INSERT OR IGNORE INTO thread_ref (msgid, thread_id) VALUES (?, ?)", (own, message_id)
            ).rowcount
            if inserted:
                row = (message_id,)
            else:
                row = db.execute("SELECT thread_id FROM thread_ref WHERE msgid = ?", (own,)).fetchone()
        if row is not None:
            thread = int(row[0])
    if thread is None and by_subject:
        row = db.execute("SELECT thread_id, date FROM thread_subject WHERE base = ?", (key,)).fetchone()
        if row is not None and abs(summary.date - int(row[1])) <= SUBJECT_WINDOW:
            thread = int(row[0])
    if thread is None:
        thread = message_id
    # First mapping wins: an id keeps pointing at the thread it was first seen in.
    ids = [r for r in {*refs, own} if r and not (recorded and r == own)]
    if ids:
        db.executemany("INSERT OR IGNORE INTO thread_ref (msgid, thread_id) VALUES (?, ?)", [(r, thread) for r in ids])
    if key:
        db.execute(
            "INSERT INTO thread_subject (base, thread_id, date) VALUES (?, ?, ?)"
            " ON CONFLICT (base) DO UPDATE SET thread_id = excluded.thread_id, date = excluded.date"
            " WHERE excluded.date >= thread_subject.date",
            (key, thread, summary.date),
        )
    return thread
