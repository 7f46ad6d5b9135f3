"""Message summaries (what a list shows), RFC 5256 base subjects and thread ids at delivery."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase, TestCase

from mailsrv.message.parse import parse_message
from mailsrv.store import SQLiteStoreRegistry
from mailsrv.store.interfaces import SummaryAddress
from mailsrv.store.summary import PREVIEW_CHARS, base_subject, preview_text, summarize


def summary_of(raw: bytes, internal_date: int = 1_700_000_000):  # type: ignore[no-untyped-def]
    return summarize(raw, parse_message(raw), internal_date)


class BaseSubjectTests(SynchronousTestCase):
    def test_rfc5256_examples(self) -> None:
        cases = {
            "hello": ("hello", False),
            "Re: hello": ("hello", True),
            "RE:  Re: FWD: hello": ("hello", True),
            "Fw: hello (fwd)": ("hello", True),
            "hello (fwd) (FWD)": ("hello", True),
            "[list] Re: hello": ("hello", True),
            "Re [list]: hello": ("hello", True),
            "[list] hello": ("hello", False),
            "[only a blob]": ("[only a blob]", False),
            "[Fwd: Re: hello]": ("hello", True),
            "  lots   of\tspace ": ("lots of space", False),
            "Reply to all": ("Reply to all", False),
            "": ("", False),
        }
        for subject, expected in cases.items():
            self.assertEqual(base_subject(subject), expected, subject)

    def test_hostile_subject_is_linear(self) -> None:
        import time

        began = time.process_time()
        base_subject("[" * 20000 + "re:" * 20000 + "(fwd)" * 5000)
        self.assertLess(time.process_time() - began, 2.0)


class SummarizeTests(SynchronousTestCase):
    def test_fields(self) -> None:
        s = summary_of(
            b"From: =?utf-8?q?=C3=89mile_Z?= <emile@example.org>\r\n"
            b"To: a@example.org, Bob <b@example.org>\r\nCc: c@example.org\r\n"
            b"Subject: =?utf-8?q?Caf=C3=A9?= plans\r\nDate: Tue, 5 Mar 2024 09:00:00 +0100\r\n"
            b"Message-ID: <own@x>\r\nIn-Reply-To: <p2@x>\r\n"
            b"References: <p0@x>\r\n\t<p1@x> <p2@x>\r\n\r\n"
            b"> quoted text\r\nHello   there,\r\n\r\nsee you.\r\n"
        )
        self.assertEqual(s.from_, (SummaryAddress("Émile Z", "emile@example.org"),))
        self.assertEqual([a.addr for a in s.to], ["a@example.org", "b@example.org"])
        self.assertEqual(s.cc, (SummaryAddress("", "c@example.org"),))
        self.assertEqual(s.subject, "Café plans")
        self.assertEqual(s.date, 1709625600)
        self.assertEqual((s.message_id, s.in_reply_to, s.references), ("own@x", ("p2@x",), ("p0@x", "p1@x", "p2@x")))
        self.assertEqual(s.preview, "Hello there, see you.")
        self.assertFalse(s.has_attachment)

    def test_missing_or_bad_date_uses_internal_date(self) -> None:
        self.assertEqual(summary_of(b"Subject: x\r\n\r\nbody\r\n", 42).date, 42)
        self.assertEqual(summary_of(b"Date: yesterday-ish\r\n\r\nbody\r\n", 42).date, 42)

    def test_preview_of_html_and_encoded_text(self) -> None:
        html = (
            b"Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n"
            b"Content-Type: text/html\r\n\r\n<style>p{}</style><p>Hi <b>you</b></p>\r\n--b--\r\n"
        )
        self.assertEqual(summary_of(html).preview, "Hi you")
        qp = (
            b"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
            + b"Gr=FC=DFe " * 100
        )
        p = summary_of(qp).preview
        self.assertTrue(p.startswith("Grüße Grüße"))
        self.assertEqual(len(p), PREVIEW_CHARS)

    def test_attachments(self) -> None:
        def mixed(part: bytes) -> bytes:
            return (
                b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
                b"see attached\r\n--b\r\n" + part + b"\r\n\r\ndata\r\n--b--\r\n"
            )

        self.assertTrue(summary_of(mixed(b"Content-Type: application/pdf")).has_attachment)
        self.assertTrue(
            summary_of(mixed(b"Content-Type: text/plain\r\nContent-Disposition: attachment")).has_attachment
        )
        self.assertTrue(summary_of(mixed(b"Content-Type: text/csv; name=a.csv")).has_attachment)
        self.assertTrue(summary_of(mixed(b"Content-Type: message/rfc822")).has_attachment)
        self.assertFalse(summary_of(mixed(b"Content-Type: image/png\r\nContent-Disposition: inline")).has_attachment)
        self.assertFalse(summary_of(mixed(b"Content-Type: text/plain")).has_attachment)
        self.assertEqual(summary_of(mixed(b"Content-Type: application/pdf")).preview, "see attached")

    def test_no_header_at_all(self) -> None:
        s = summary_of(b"just a line\r\n")
        self.assertEqual((s.from_, s.subject, s.message_id, s.references), ((), "", "", ()))


def msg(mid: str, subject: str, refs: str = "", irt: str = "", date: str = "Mon, 4 Mar 2024 10:00:00 +0000") -> bytes:
    head = f"From: a@example.org\r\nSubject: {subject}\r\nDate: {date}\r\n"
    if mid:
        head += f"Message-ID: <{mid}>\r\n"
    if refs:
        head += f"References: {refs}\r\n"
    if irt:
        head += f"In-Reply-To: {irt}\r\n"
    return (head + "\r\nbody\r\n").encode()


class ThreadTests(TestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mailsrv-thread-"))
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.registry = SQLiteStoreRegistry(self.dir)
        self.store = self.registry.open("alice")
        self.addCleanup(self.registry.close_all)

    async def thread_of(self, mailbox: str, raw: bytes) -> int:
        result = await self.store.append(mailbox, raw)
        found = await self.store.summaries(result.mailbox_id, [result.uid])
        return found[0].thread_id

    async def test_references_in_reply_to_and_subject(self) -> None:
        t1 = await self.thread_of("INBOX", msg("a1", "Plans"))
        # A reply stored in another mailbox joins the thread (thread ids are account-wide).
        self.assertEqual(await self.thread_of("Sent", msg("a2", "Re: Plans", refs="<a1>")), t1)
        self.assertEqual(await self.thread_of("INBOX", msg("a3", "Re: Plans", irt="<a2>")), t1)
        # Only a reference unknown so far: a new thread, found again by the parent later.
        t4 = await self.thread_of("INBOX", msg("b2", "Re: Other", refs="<b1>"))
        self.assertNotEqual(t4, t1)
        self.assertEqual(await self.thread_of("INBOX", msg("b1", "Other")), t4)
        # A reply without references joins by base subject; a non-reply with that subject does not.
        self.assertEqual(await self.thread_of("INBOX", msg("a4", "RE: [x] plans")), t1)
        self.assertNotIn(await self.thread_of("INBOX", msg("c1", "Plans")), (t1, t4))
        # ...nor a reply from long after.
        late = msg("a5", "Re: Plans", date="Mon, 4 Nov 2024 10:00:00 +0000")
        self.assertNotIn(await self.thread_of("INBOX", late), (t1, t4))
        # The thread across mailboxes, by sent date; copies keep their thread.
        members = await self.store.thread(t1)
        self.assertEqual([m.summary.message_id for m in members][:3], ["a1", "a2", "a3"])
        inbox = self.store.mailbox("INBOX")
        copy = await self.store.copy(inbox.id, [1], "Archive")
        archived = await self.store.summaries(self.store.mailbox("Archive").id, copy.dest_uids)
        self.assertEqual(archived[0].thread_id, t1)

    async def test_find_message_follows_a_move(self) -> None:
        result = await self.store.append("INBOX", msg("m1", "hello"))
        before = (await self.store.summaries(result.mailbox_id))[0]
        await self.store.move(result.mailbox_id, [result.uid], "Archive")
        found = await self.store.find_message(before.id)
        assert found is not None
        self.assertEqual(found.mailbox_id, self.store.mailbox("Archive").id)
        self.assertEqual((found.summary, found.thread_id), (before.summary, before.thread_id))
        box = self.store.mailbox("Archive")
        await self.store.store_flags(box.id, [found.uid], "add", ["\\Deleted"])
        await self.store.expunge(box.id)
        self.assertIsNone(await self.store.find_message(before.id))


@given(st.lists(st.sampled_from(["", " ", "> quoted", "  >x", "word", "a b\tc", "é" * 30, "x" * 250]), max_size=40))
def test_preview_text_stops_early_with_the_same_result(lines: list[str]) -> None:
    text = "\n".join(lines)
    kept = [line for line in text.splitlines() if not line.lstrip().startswith(">")]
    assert preview_text(text) == " ".join(" ".join(kept).split())[:PREVIEW_CHARS]


def test_preview_splits_lines_a_chunk_at_a_time_as_splitlines_would() -> None:
    """The preview reads lines a chunk at a time; it must take the words splitlines() would, whatever the
    chunk boundaries (a line longer than a chunk, CRLF cut in two, quoted lines, Unicode line breaks)."""
    import random

    from mailsrv.store.summary import PREVIEW_CHARS, _lines, preview_text

    def reference(text: str) -> str:
        words: list[str] = []
        for line in text.splitlines():
            if not line.lstrip().startswith(">"):
                words.extend(line.split())
        return " ".join(words)[:PREVIEW_CHARS]

    rng = random.Random(7)
    for _ in range(500):
        text = "".join(rng.choice(["ab", "c ", "> q", "\r\n", "\n", "\r", "\u2028", "x" * 50, " "]) for _ in range(300))
        assert preview_text(text) == reference(text)
        for chunk in (1, 5, 64):
            assert "".join(_lines(text, chunk)) == text
    assert preview_text("> quoted\n" * 3000 + "the answer") == "the answer"


_MONTH_NAMES = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()


@given(
    st.sampled_from(["", "Tue, ", "Mon,  ", "Sun,", "Fri ,"]),
    st.integers(0, 39),
    st.sampled_from(_MONTH_NAMES),
    st.integers(0, 10000),
    st.integers(0, 25),
    st.integers(0, 61),
    st.one_of(st.none(), st.integers(0, 61)),
    st.sampled_from(["+", "-"]),
    st.integers(0, 2599),
    st.sampled_from([" ", "  ", "\t"]),
    st.sampled_from(["", " (UTC)", " (Coordinated Universal Time)", " (x", " ()", " (a(b))"]),
)
def test_usual_dates_read_as_the_email_package_reads_them(  # type: ignore[no-untyped-def]
    weekday, day, month, year, hour, minute, second, sign, zone, space, comment
):
    import email.utils

    from mailsrv.store.summary import sent_date

    text = f"{weekday}{day}{space}{month} {year:04d}{space}{hour:02d}:{minute:02d}"
    text += f"{'' if second is None else f':{second:02d}'} {sign}{zone:04d}{comment}"
    try:
        expected = int(email.utils.parsedate_to_datetime(text).timestamp())
    except (TypeError, ValueError, IndexError, OverflowError):
        expected = -1
    assert sent_date(text, -1) == expected, text


def test_postfix_dates_take_the_short_way() -> None:
    from mailsrv.store.summary import _usual_date

    assert _usual_date("Mon,  7 Dec 2026 06:46:15 +0000 (UTC)") == 1796625975


_LINE = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=120),
    st.text(" abc>\t\r\u00e9\u2028", max_size=90),
    st.just("> quoted " * 5),
)


@given(
    st.lists(_LINE, max_size=80),
    st.sampled_from(["", "; charset=utf-8", "; charset=iso-8859-1", "; charset=windows-1252", "; charset=utf-16"]),
    st.sampled_from([b"\r\n", b"\n", b"\r"]),
    st.binary(max_size=3),
)
@example(["word " * 15] * 60, "", b"\r\n", b"")  # the first 2 KB fill the preview
@example(["> quoted " * 10] * 22 + ["word " * 15] * 30, "; charset=utf-8", b"\n", b"")  # they do not
@example(["> quoted " * 10] * 22 + ["w\u00e9rd " * 15] * 30, "; charset=iso-8859-1", b"\n", b"")
def test_preview_from_the_first_lines_is_the_preview_of_the_whole_body(  # type: ignore[no-untyped-def]
    lines, charset, newline, junk
):
    from mailsrv.message.parse import body_text

    codec = {"": "utf-8"}.get(charset, charset.rpartition("=")[2])
    body = newline.join(line.encode(codec, "replace") for line in lines) + junk
    raw = b"Content-Type: text/plain" + charset.encode() + b"\r\n\r\n" + body
    tree = parse_message(raw)
    whole = body_text(tree, raw[tree.body_start : tree.body_start + 16 * 1024])
    assert summarize(raw, tree, 0).preview == preview_text(whole)
