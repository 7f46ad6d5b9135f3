"""Property tests for the arguments of APPEND (MULTIAPPEND/CATENATE), SORT, CANCELUPDATE and
SEARCH's RFC 5267 return options: whatever follows the command name, the session answers
with a tagged reply, logs no crash, and keeps answering."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.imapserver.harness import Client, make_server
from tests.imapserver.test_fuzz import crash_log

_DIR = Path(tempfile.mkdtemp(prefix="imapfuzzext"))
_SERVER = make_server(_DIR)

_TOKENS = st.sampled_from(
    [
        " ",
        "(",
        ")",
        '"',
        "RETURN",
        "(MIN MAX)",
        "PARTIAL",
        "1:5",
        "0:0",
        "UPDATE",
        "CONTEXT",
        "ALL",
        "COUNT",
        "SAVE",
        "REVERSE",
        "SUBJECT",
        "DATE",
        "DISPLAYFROM",
        "UTF-8",
        "KOI8-R",
        "UNSEEN",
        "UID",
        "1:*",
        "$",
        "CATENATE",
        "TEXT",
        "URL",
        "{3+}\r\nabc",
        "~{2+}\r\nab",
        "{0+}\r\n",
        '"/INBOX/;UID=1"',
        '";UID=1/;SECTION=1.MIME"',
        '"imap://x@y/INBOX/;UID=1"',
        "(\\Seen)",
        '"01-Jan-2024 00:00:00 +0000"',
        "UTF8",
        "NIL",
        "\\",
        "*",
        "%",
    ]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["SORT", "UID SORT", "APPEND INBOX", "APPEND Drafts", "CANCELUPDATE", "SEARCH", "UID SEARCH"]),
    st.lists(_TOKENS, max_size=12).map(" ".join),
)
def test_arguments_never_crash(command: str, arguments: str) -> None:
    with crash_log() as crashes:
        c = Client(_SERVER)
        c.login()
        c.cmd("s SELECT INBOX")
        out = c.send(f"x {command} {arguments}\r\n".encode() + b"\r\n" * 3 + b"n NOOP\r\n")
        assert b"\r\nn OK" in b"\r\n" + out or b"x OK" in out or c.session._busy, out
        assert not crashes, crashes
