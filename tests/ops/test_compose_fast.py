"""mailsrv/ops/compose_fast.py writes exactly the bytes of compose's email-package path: thousands of
generated drafts (names with specials and spaces, long and short fields, encoded-word look-alikes,
non-ASCII, long lines, references, extra fields, text/HTML combinations) are composed both ways with
the same random state (the multipart boundary is random) and compared; and the fast path is taken
for the common message (a webapi Send) and declined where the email package must decide."""

from __future__ import annotations

import datetime
import email.utils
import random
from unittest import mock

import pytest

from mailsrv.ops import compose as compose_module
from mailsrv.ops import compose_fast
from mailsrv.ops.compose import Draft, Mailbox, ReplyTo, compose

_PRINTABLE = "".join(chr(c) for c in range(0x20, 0x7F))
_NAME_CHARS = _PRINTABLE + '     ,."\\()<>@;:[]=?' + "éß☺"
_TEXT_CHARS = "abc xyz\n\n\r\t.-=?" + "é☺\x00"


def _text(rng: random.Random, chars: str, longest: int) -> str:
    return "".join(rng.choice(chars) for _ in range(rng.randint(0, longest)))


def _mailbox(rng: random.Random) -> Mailbox:
    local = rng.choice(["bob", "b.o-b+tag", "x_y", "o'neil", "a" * 40])
    domain = rng.choice(["example.org", "mail.example.net", "b", "xn--bcher-kva.example"])
    name = "" if rng.random() < 0.3 else _text(rng, _NAME_CHARS if rng.random() < 0.3 else _PRINTABLE, 30)
    return Mailbox(address=f"{local}@{domain}", name=name.replace("\r", "").replace("\n", "").replace("\0", ""))


def _draft(rng: random.Random) -> Draft:
    text = _text(rng, _TEXT_CHARS, 300) if rng.random() < 0.8 else ""
    if rng.random() < 0.1:
        text = "y" * rng.choice([77, 78, 79, 998, 999, 1200]) + "\n"
    html = "" if rng.random() < 0.5 else "<p>" + _text(rng, _TEXT_CHARS, 200) + "</p>"
    subject = _text(rng, _NAME_CHARS if rng.random() < 0.2 else _PRINTABLE, rng.choice([5, 40, 80]))
    if rng.random() < 0.05:
        subject = "=?utf-8?q?encoded?="
    headers = []
    for _ in range(rng.randint(0, 2)):
        names = ["List-Unsubscribe", "X-Campaign", "Sender", "Resent-Date", "Comments", "Keywords", "Content-Language"]
        name = rng.choice(names)
        headers.append((name, _text(rng, _PRINTABLE + "é", rng.choice([10, 70]))))
    date = None
    if rng.random() < 0.5:
        zone = datetime.timezone(datetime.timedelta(minutes=rng.choice([0, 60, -330, 345])))
        date = datetime.datetime(2026, 12, 7, 3, 4, 5, rng.randint(0, 999999), tzinfo=zone)
    reply = None
    references: list[str] = []
    if rng.random() < 0.2:
        reply = ReplyTo("<parent@example.org>", [f"<r{i}@example.org>" for i in range(rng.randint(0, 6))])
    elif rng.random() < 0.2:
        references = [f"<ref{i}.{'z' * rng.randint(1, 30)}@example.org>" for i in range(rng.randint(1, 4))]
    return Draft(
        from_=_mailbox(rng),
        to=[_mailbox(rng) for _ in range(rng.randint(0, 3))],
        cc=[_mailbox(rng) for _ in range(rng.randint(0, 2))],
        bcc=[_mailbox(rng) for _ in range(rng.randint(0, 2))],
        reply_to=[_mailbox(rng) for _ in range(rng.randint(0, 1))],
        subject=subject.strip("\r\n"),
        text=text,
        html=html,
        message_id=rng.choice(["", "<a.b@example.org>", '<weird"id@x>', f"<{'m' * 70}@example.org>"]),
        references=references,
        in_reply_to=reply,
        date=date,
        headers=headers,
    )


def _both_ways(draft: Draft, for_drafts: bool) -> tuple[bytes | None, bytes]:
    """(the fast path's bytes or None when it declined, the email package's), same random state
    and the same "now" for the Date: field."""
    clock = mock.Mock(time=lambda: 1796615106.5)
    with mock.patch.object(compose_module, "time", clock), mock.patch.object(compose_module, "_now_field", (0, "")):
        return _both_ways_now(draft, for_drafts)


def _both_ways_now(draft: Draft, for_drafts: bool) -> tuple[bytes | None, bytes]:
    fast: list[bytes | None] = []
    real = compose_fast.write_message

    def spy(*args: object) -> bytes | None:
        fast.append(real(*args))  # type: ignore[arg-type]
        return fast[-1]

    with mock.patch.object(compose_module, "write_message", spy):
        random.seed(7)
        compose(draft, "<fixed@example.org>", for_drafts=for_drafts)
    with mock.patch.object(compose_module, "write_message", lambda *args: None):
        random.seed(7)
        slow = compose(draft, "<fixed@example.org>", for_drafts=for_drafts).data
    return (fast[0] if fast else None), slow


@pytest.mark.parametrize("seed", range(8))
def test_same_bytes_as_the_email_package(seed: int) -> None:
    rng = random.Random(seed)
    taken = 0
    for _ in range(400):
        draft = _draft(rng)
        if not (draft.to or draft.cc or draft.bcc):
            draft.to = [Mailbox("bob@example.org")]
        for_drafts = rng.random() < 0.2
        try:
            fast, slow = _both_ways(draft, for_drafts)
        except Exception as e:  # a refusal (a long subject, a bad header): the same either way
            with mock.patch.object(compose_module, "write_message", lambda *args: None):
                with pytest.raises(type(e)):
                    compose(draft, "<fixed@example.org>", for_drafts=for_drafts)
            continue
        if fast is not None:
            taken += 1
            assert fast == slow, draft
    assert taken > 25  # the generator does reach the fast path


def test_the_common_message_takes_the_fast_path() -> None:
    """A webapi Send of text (and HTML) with ASCII fields: no email package."""
    draft = Draft(
        from_=Mailbox("alice@example.org", "Alice Example"),
        to=[Mailbox("someone@remote.example")],
        subject="bench 1",
        text="x" * 71 + "\n",
    )
    with mock.patch.object(compose_module, "_with_email_package", side_effect=AssertionError("slow path")):
        assert compose(draft).data.startswith(b"From: Alice Example <alice@example.org>\r\n")
        draft.html = "<p>x</p>"
        assert b"multipart/alternative" in compose(draft).data


@pytest.mark.parametrize(
    "change",
    [
        {"subject": "Grüße"},  # RFC 2047
        {"subject": "s" * 80},  # folded
        {"subject": "=?utf-8?q?x?="},  # an encoded word's look-alike
        {"to": [Mailbox("bob@example.org", "Bøb")]},
        {"to": [Mailbox('"b o b"@example.org')]},  # quoted local part
        {"headers": [("Resent-Date", "Mon, 07 Dec 2026 03:04:05 +0000")]},  # structured in the email package
        {"headers": [("Content-Language", "en")]},  # dropped by the email package's set_content
    ],
)
def test_declined_where_the_email_package_decides(change: dict[str, object]) -> None:
    draft = Draft(from_=Mailbox("alice@example.org"), to=[Mailbox("bob@example.org")], subject="hi", text="hi\n")
    for key, value in change.items():
        setattr(draft, key, value)
    fast, slow = _both_ways(draft, False)
    assert fast is None and slow


def test_date_for_now_is_what_formatdate_writes() -> None:
    for _ in range(3):  # a second may tick between the two
        before = email.utils.formatdate(localtime=True)
        value = compose_module._date_field(None)
        if value == before == email.utils.formatdate(localtime=True):
            return
    raise AssertionError(f"{value!r} != {before!r}")
