"""Property tests: whatever arrives, the session answers and never crashes.

- random bytes: no handler crash is logged and the session keeps answering afterwards
  (a final NOOP, sent after enough CRLFs to end any literal, gets its tagged reply);
- random well-formed commands: every command gets its tagged reply, in order.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.logger import globalLogPublisher

from tests.imapserver.harness import Client, make_server


@contextmanager
def crash_log() -> Iterator[list[Any]]:
    events: list[Any] = []

    def observer(event: Any) -> None:
        if "log_failure" in event:
            events.append(event)

    globalLogPublisher.addObserver(observer)
    try:
        yield events
    finally:
        globalLogPublisher.removeObserver(observer)


_DIR = Path(tempfile.mkdtemp(prefix="imapfuzz"))
_SERVER = make_server(_DIR)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=200), max_size=5), st.booleans())
def test_random_bytes(chunks: list[bytes], login: bool) -> None:
    with crash_log() as crashes:
        c = Client(_SERVER)
        if login:
            c.login()
        for chunk in chunks:
            c.send(chunk)
        # Whatever state the assembler is in, a few CRLFs end the command; big literal
        # counts are refused (max line 64 KiB) so the session is back at a command start.
        if not c.session._closed and c.session.idling is False:
            c.send(b"\r\n" * 3)
        assert not crashes, crashes


_NAMES = st.sampled_from(["INBOX", "inbox", "Sent", '"Work/Sub"', "&AOQ-", '"a b"', "{3+}\r\nabc", '"Äpfel"'])
_COMMANDS = st.one_of(
    st.just("NOOP"),
    st.just("CAPABILITY"),
    st.builds("SELECT {}".format, _NAMES),
    st.builds("EXAMINE {} (CONDSTORE)".format, _NAMES),
    st.builds("CREATE {}".format, _NAMES),
    st.builds("DELETE {}".format, _NAMES),
    st.builds("RENAME {} {}".format, _NAMES, _NAMES),
    st.builds("SUBSCRIBE {}".format, _NAMES),
    st.builds("UNSUBSCRIBE {}".format, _NAMES),
    st.builds('LIST "" {}'.format, st.sampled_from(["*", "%", '"*/%"', '""', "INBOX*"])),
    st.builds(
        "LIST ({}) {} {} RETURN ({})".format,
        st.sampled_from(["", "SUBSCRIBED", "SPECIAL-USE RECURSIVEMATCH", "REMOTE"]),
        st.sampled_from(['""', "Work", '"Work/"']),
        st.sampled_from(["*", "%", '("*" "%")']),
        st.sampled_from(["", "CHILDREN", "SUBSCRIBED SPECIAL-USE", "STATUS (MESSAGES UIDNEXT SIZE)"]),
    ),
    st.builds("LSUB {} {}".format, st.sampled_from(['""', "Work"]), st.sampled_from(["*", "%"])),
    st.builds(
        "STATUS {} ({})".format,
        _NAMES,
        st.sampled_from(["MESSAGES", "UIDNEXT UIDVALIDITY", "UNSEEN DELETED SIZE", "HIGHESTMODSEQ RECENT"]),
    ),
    st.builds("ENABLE {}".format, st.sampled_from(["CONDSTORE", "QRESYNC", "IMAP4rev2", "UTF8=ACCEPT", "X"])),
    st.just("UNSELECT"),
    st.just("CLOSE"),
    st.just("CHECK"),
    st.just("NAMESPACE"),
    st.just('GETQUOTA ""'),
    st.builds("GETQUOTAROOT {}".format, _NAMES),
    st.just('ID ("name" "fuzz")'),
    st.just("ID NIL"),
    # Selected-state commands (the mailbox is empty here; the answers still must come).
    st.sampled_from(
        [
            "FETCH 1:* (FLAGS UID)",
            "UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1)",
            "UID SEARCH ALL",
            "SEARCH RETURN (MIN MAX COUNT) UNSEEN",
            "STORE 1 +FLAGS (\\Seen)",
            "UID STORE 1:* FLAGS.SILENT ()",
            "EXPUNGE",
            "UID EXPUNGE 1:5",
            "COPY 1 Sent",
            "UID MOVE 1:* Trash",
        ]
    ),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_COMMANDS, min_size=1, max_size=12))
def test_random_commands(commands: list[str]) -> None:
    with crash_log() as crashes:
        with tempfile.TemporaryDirectory() as d:
            server = make_server(Path(d))
            c = Client(server)
            c.login()
            data = b"".join(f"t{i} {cmd}\r\n".encode() for i, cmd in enumerate(commands))
            out = c.send(data)
            pos = 0
            for i in range(len(commands)):
                tag = f"\r\nt{i} ".encode()
                found = (b"\r\n" + out).find(tag, pos)
                assert found >= 0, (commands[i], out)
                pos = found
            server.stores.close_all()
        assert not crashes, crashes
