"""FETCH, SEARCH, STORE, COPY, MOVE and EXPUNGE with real clients against the real daemon."""

from __future__ import annotations

import imaplib
import re
import subprocess
from pathlib import Path

import pytest
from imapclient import IMAPClient

from tests.daemon import RunningDaemon
from tests.tools import needs_program

PLAIN = (
    b"From: =?utf-8?q?J=C3=B6rg?= <joerg@example.net>\r\n"
    b"To: alice@example.org\r\nCc: Carol <carol@example.com>\r\n"
    b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= from the lake\r\n"
    b"Date: Tue, 24 Nov 2026 10:00:00 +0100\r\nMessage-ID: <m1@example.net>\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"Stra=C3=9Fe und Seeufer.\r\nSecond line.\r\n"
)
MULTIPART = (
    b"From: bob@example.org\r\nTo: alice@example.org\r\nSubject: report\r\n"
    b"Date: Wed, 25 Nov 2026 10:00:00 +0000\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
    b"--b1\r\nContent-Type: text/plain\r\n\r\nsee the attachment\r\n"
    b"--b1\r\nContent-Type: application/octet-stream; name=data.bin\r\n"
    b"Content-Disposition: attachment; filename=data.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"AAECAwQ=\r\n"
    b"--b1\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nFrom: x@example.com\r\n\r\ninner body\r\n"
    b"--b1--\r\n"
)


def _client(daemon: RunningDaemon) -> IMAPClient:
    c = IMAPClient("127.0.0.1", port=daemon.ports["imaps"], ssl=True, ssl_context=daemon.ssl_context())
    c.login("alice@example.org", "alicepass")
    return c


def test_fetch_envelope_bodystructure_sections(daemon: RunningDaemon) -> None:
    c = _client(daemon)
    c.append("INBOX", PLAIN)
    c.append("INBOX", MULTIPART)
    c.select_folder("INBOX")
    data = c.fetch([1, 2], ["ENVELOPE", "BODYSTRUCTURE", "RFC822.SIZE", "FLAGS", "INTERNALDATE"])
    env = data[1][b"ENVELOPE"]
    assert env.subject == b"=?utf-8?q?Gr=C3=BC=C3=9Fe?= from the lake"
    assert env.from_[0].mailbox == b"joerg" and env.from_[0].host == b"example.net"
    assert env.cc[0].name == b"Carol" and env.from_[0].name == b"=?utf-8?q?J=C3=B6rg?="
    assert data[1][b"RFC822.SIZE"] == len(PLAIN)
    bs = data[2][b"BODYSTRUCTURE"]
    assert bs.is_multipart and len(bs[0]) == 3
    assert bs[0][1][0] == b"APPLICATION" and bs[0][2][0] == b"MESSAGE"
    parts = c.fetch(
        [2],
        [
            "BODY.PEEK[1]",
            "BODY.PEEK[3.HEADER]",
            "BINARY.SIZE[2]",
            "BODY.PEEK[HEADER.FIELDS (SUBJECT)]",
            "BODY.PEEK[]<0.4>",
        ],
    )[2]
    assert parts[b"BODY[1]"] == b"see the attachment"
    assert parts[b"BODY[3.HEADER]"].startswith(b"Subject: inner")
    assert parts[b"BINARY.SIZE[2]"] == 5
    # imapclient does not parse literal8; imaplib's literal pattern accepts ~{n}.
    typ, raw = c._imap.fetch("2", "(BINARY.PEEK[2])")
    assert typ == "OK" and raw[0][1] == b"\x00\x01\x02\x03\x04" and b"~{5}" in raw[0][0]
    assert parts[b"BODY[HEADER.FIELDS (SUBJECT)]"] == b"Subject: report\r\n\r\n"
    assert parts[b"BODY[]<0>"] == b"From"
    assert b"\\Seen" not in c.get_flags([2])[2]
    c.fetch([2], ["BODY[TEXT]"])
    assert b"\\Seen" in c.get_flags([2])[2]
    c.logout()


def test_search_keys_and_esearch(daemon: RunningDaemon) -> None:
    c = _client(daemon)
    c.append("INBOX", PLAIN)
    c.append("INBOX", MULTIPART, flags=[b"\\Flagged"])
    c.select_folder("INBOX")
    assert c.search(["FLAGGED"]) == [2]
    assert c.search(["SUBJECT", "grüße"], charset="UTF-8") == [1]
    assert c.search(["BODY", "straße"], charset="UTF-8") == [1]
    assert c.search(["TEXT", "attachment"]) == [2]
    assert c.search(["FROM", "Jörg"], charset="UTF-8") == [1]
    assert c.search(["OR", "FLAGGED", "CC", "carol"]) == [1, 2]
    assert c.search(["NOT", "FLAGGED", "SENTSINCE", "1-Nov-2026"]) == [1]
    assert c.search(["HEADER", "Message-ID", "m1@example.net"]) == [1]
    assert c.search(["LARGER", str(len(PLAIN))]) == [2]
    typ, _ = c._imap.uid("SEARCH", "RETURN", "(MIN MAX COUNT)", "ALL")
    esearch = c._imap.response("ESEARCH")[1][0]
    assert typ == "OK" and b"UID MIN 1 MAX 2 COUNT 2" in esearch, esearch
    with pytest.raises(Exception, match="BADCHARSET"):
        c.search(["SUBJECT", "x"], charset="KOI8-R")
    c.logout()


def test_store_copy_move_expunge_and_other_session_sees_it(daemon: RunningDaemon) -> None:
    a = _client(daemon)
    b = _client(daemon)
    for _ in range(3):
        a.append("INBOX", PLAIN)
    a.select_folder("INBOX")
    b.select_folder("INBOX")
    flags = a.add_flags([1, 2], [b"\\Deleted", b"$Important"])
    # Appended while no session had INBOX selected: recent for a, which selected it first.
    assert set(flags[1]) == {b"\\Deleted", b"$Important", b"\\Recent"}
    typ, _ = a._imap.uid("COPY", "1:3", "Archive")
    copyuid = a._imap.response("COPYUID")[1][0]
    assert typ == "OK" and re.fullmatch(rb"\d+ 1:3 1:3", copyuid), copyuid
    a.move([3], "Trash")
    a.expunge()
    assert a.search(["ALL"]) == []
    b.noop()
    assert b.search(["ALL"]) == []
    a.select_folder("Archive")
    assert len(a.search(["ALL"])) == 3
    assert a.select_folder("Trash")[b"EXISTS"] == 1
    a.logout()
    b.logout()


def test_condstore_unchangedsince_and_qresync_resync(daemon: RunningDaemon) -> None:
    c = _client(daemon)
    for _ in range(4):
        c.append("INBOX", PLAIN)
    c.enable("QRESYNC")
    info = c.select_folder("INBOX")
    uidvalidity, modseq = info[b"UIDVALIDITY"], info[b"HIGHESTMODSEQ"]
    # Another session changes flags and expunges.
    other = _client(daemon)
    other.select_folder("INBOX")
    other.add_flags([2], [b"\\Flagged"])
    other.add_flags([3], [b"\\Deleted"])
    other.expunge()
    other.logout()
    c.close_folder()
    typ, _ = c._imap._simple_command("SELECT", f"INBOX (QRESYNC ({uidvalidity} {modseq}))")
    responses = c._imap.untagged_responses
    assert typ == "OK"
    # Exactly the expunged UID vanished and exactly the changed message is reported.
    assert responses.get("VANISHED") == [b"(EARLIER) 3"], responses
    fetches = [x for x in responses.get("FETCH", []) if isinstance(x, bytes)]
    assert len(fetches) == 1 and b"UID 2 " in fetches[0] and b"\\Flagged" in fetches[0], fetches
    # STORE with UNCHANGEDSINCE older than the message's modseq fails with MODIFIED.
    c._imap.state = "SELECTED"  # imaplib does not track the raw SELECT above
    typ, _ = c._imap.uid("STORE", "2", "(UNCHANGEDSINCE 1)", "+FLAGS", "(\\Seen)")
    assert typ == "OK" and c._imap.response("MODIFIED")[1] == [b"2"]
    typ, _ = c._imap.uid("STORE", "2", f"(UNCHANGEDSINCE {modseq + 100})", "+FLAGS", "(\\Seen)")
    assert typ == "OK" and c._imap.response("MODIFIED")[1] == [None]
    c.logout()


def test_fetch_bad_input_keeps_connection(daemon: RunningDaemon) -> None:
    imap = imaplib.IMAP4_SSL("127.0.0.1", daemon.ports["imaps"], ssl_context=daemon.ssl_context())
    imap.login("alice@example.org", "alicepass")
    imap.select("INBOX")
    for bad in ("1 (BODY[", "1 (FOOBAR)", "99 FLAGS", "1:* (BODY[1.MIME]<0.0>)", "x FLAGS"):
        with pytest.raises(imaplib.IMAP4.error):
            imap.fetch(*bad.split(" ", 1))
    assert imap.noop()[0] == "OK"
    imap.logout()


@needs_program("mbsync", package="isync")
def test_mbsync_two_way(daemon: RunningDaemon, tmp_path: Path) -> None:
    c = _client(daemon)
    c.append("INBOX", PLAIN)
    c.logout()
    maildir = tmp_path / "maildir"
    maildir.mkdir()
    rc = tmp_path / "mbsyncrc"
    rc.write_text(
        f"""IMAPAccount test
Host 127.0.0.1
Port {daemon.ports["imaps"]}
User alice@example.org
Pass alicepass
SSLType IMAPS
CertificateFile {daemon.cert_path}

IMAPStore remote
Account test

MaildirStore local
Path {maildir}/
Inbox {maildir}/INBOX

Channel sync
Far :remote:
Near :local:
Patterns INBOX
Create Both
Expunge Both
SyncState *
"""
    )
    run = subprocess.run(["mbsync", "-c", str(rc), "-a"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    new = list((maildir / "INBOX" / "new").iterdir()) + list((maildir / "INBOX" / "cur").iterdir())
    assert len(new) == 1 and b"Seeufer" in new[0].read_bytes()
    # A message written locally goes up on the next run.
    (maildir / "INBOX" / "new" / "123.local").write_bytes(MULTIPART)
    run = subprocess.run(["mbsync", "-c", str(rc), "-a"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    c = _client(daemon)
    c.select_folder("INBOX")
    subjects = [e[b"ENVELOPE"].subject for e in c.fetch(c.search(["ALL"]), ["ENVELOPE"]).values()]
    assert b"report" in subjects and len(subjects) == 2
    c.logout()


def test_move_copyuid_silent_store_searchres_and_vanished_fetch(daemon: RunningDaemon) -> None:
    imap = imaplib.IMAP4_SSL("127.0.0.1", daemon.ports["imaps"], ssl_context=daemon.ssl_context())
    imap.login("alice@example.org", "alicepass")
    for _ in range(5):
        imap.append("INBOX", None, None, PLAIN)
    imap._simple_command("ENABLE", "QRESYNC")
    typ, _ = imap.select("INBOX")
    assert typ == "OK"
    modseq = int(imap.response("HIGHESTMODSEQ")[1][0])
    # STORE .SILENT under CONDSTORE still reports the new MODSEQ (RFC 7162 §3.1.3), never FLAGS.
    typ, data = imap.uid("STORE", "1:2", "+FLAGS.SILENT", "(\\Answered)")
    assert typ == "OK" and all(b"MODSEQ" in d and b"FLAGS" not in d for d in data), data
    # SEARCH RETURN (SAVE) then FETCH of "$" (RFC 5182).
    typ, _ = imap.uid("SEARCH", "RETURN", "(SAVE)", "ANSWERED")
    assert typ == "OK"
    typ, data = imap.uid("FETCH", "$", "(FLAGS)")
    assert typ == "OK" and len(data) == 2 and all(b"\\Answered" in d for d in data), data
    # UID MOVE: COPYUID in an untagged OK, then VANISHED (QRESYNC) for the moved messages.
    typ, _ = imap.uid("MOVE", "4:5", "Trash")
    assert typ == "OK"
    assert any(b"COPYUID" in r and b" 4:5 " in r for r in imap.untagged_responses.get("OK", [])), (
        imap.untagged_responses
    )
    assert imap.response("VANISHED")[1] == [b"4:5"]
    # FETCH CHANGEDSINCE with VANISHED: the earlier expunges and the flag changes since `modseq`.
    typ, data = imap.uid("FETCH", "1:*", f"(FLAGS) (CHANGEDSINCE {modseq} VANISHED)")
    assert typ == "OK"
    assert imap.response("VANISHED")[1] == [b"(EARLIER) 4:5"]
    assert sorted(re.search(rb"UID (\d+)", d).group(1) for d in data if d) == [b"1", b"2"], data  # type: ignore[union-attr]
    imap.logout()


@needs_program("mbsync", package="isync")
def test_mbsync_flags_and_deletions_both_ways(daemon: RunningDaemon, tmp_path: Path) -> None:
    c = _client(daemon)
    c.append("INBOX", PLAIN)
    c.append("INBOX", MULTIPART)
    c.logout()
    maildir = tmp_path / "maildir"
    maildir.mkdir()
    rc = tmp_path / "mbsyncrc"
    rc.write_text(
        f"IMAPAccount test\nHost 127.0.0.1\nPort {daemon.ports['imaps']}\nUser alice@example.org\nPass alicepass\n"
        f"SSLType IMAPS\nCertificateFile {daemon.cert_path}\n\nIMAPStore remote\nAccount test\n\n"
        f"MaildirStore local\nPath {maildir}/\nInbox {maildir}/INBOX\n\n"
        "Channel sync\nFar :remote:\nNear :local:\nPatterns INBOX\nCreate Both\nExpunge Both\nSyncState *\n"
    )

    def sync() -> None:
        run = subprocess.run(["mbsync", "-c", str(rc), "-a"], capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stdout + run.stderr

    def local() -> dict[bytes, Path]:
        box = maildir / "INBOX"
        files = list((box / "new").iterdir()) + list((box / "cur").iterdir())
        return {(b"report" if b"Subject: report" in f.read_bytes() else b"plain"): f for f in files}

    sync()
    files = local()
    assert set(files) == {b"plain", b"report"}
    # Locally: flag "plain" (maildir info ":2,F") and delete "report".
    plain = files[b"plain"]
    base = plain.name.split(":2,")[0]
    plain.rename(maildir / "INBOX" / "cur" / f"{base}:2,F")
    files[b"report"].unlink()
    # On the server meanwhile: a new message arrives already seen.
    c = _client(daemon)
    c.append("INBOX", PLAIN.replace(b"Message-ID: <m1", b"Message-ID: <m2"), flags=[b"\\Seen"])
    c.logout()
    sync()
    c = _client(daemon)
    c.select_folder("INBOX")
    msgs = c.fetch(c.search(["ALL"]), ["FLAGS", "ENVELOPE"])
    by_id = {m[b"ENVELOPE"].message_id: set(m[b"FLAGS"]) for m in msgs.values()}
    assert set(by_id) == {b"<m1@example.net>", b"<m2@example.net>"}, by_id  # "report" expunged on the server
    assert b"\\Flagged" in by_id[b"<m1@example.net>"]
    c.logout()
    names = sorted(p.name for p in (maildir / "INBOX" / "cur").iterdir())
    assert len(names) == 2 and any(n.endswith(",S") for n in names), names
