"""The search engine (mailsrv.ops.search) on its own: every key, the program limits, the
cost rules (one decode per message, file read only when needed) and slicing."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest

from mailsrv.message.parse import parse_message
from mailsrv.message.part import Part
from mailsrv.ops import search as engine
from mailsrv.ops.errors import InvalidInput, LimitExceeded
from mailsrv.ops.search import (
    All,
    And,
    Body,
    Date,
    Flag,
    Header,
    ModSeq,
    Not,
    Or,
    Positions,
    Size,
    Subject,
    Text,
    Uids,
)
from mailsrv.store.interfaces import MailboxNotFound, MessageInfo

UTC = datetime.UTC


def _raw(sender: str, subject: str, date: str, body: str, extra: str = "") -> bytes:
    return (
        f"From: {sender}\r\nTo: team@example.org\r\nSubject: {subject}\r\nDate: {date}\r\n{extra}\r\n{body}\r\n"
    ).encode()


RAWS = {
    1: _raw("Alice <alice@example.org>", "lunch", "Mon, 2 Nov 2026 10:00:00 +0000", "see you at noon"),
    2: _raw("bob@example.org", "=?utf-8?q?R=C3=A9union?=", "Wed, 4 Nov 2026 10:00:00 +0000", "agenda attached"),
    3: _raw("carol@example.net", "Invoice", "nonsense", "<p>Total: <b>12</b></p>", "Content-Type: text/html\r\n"),
}
INFOS = [
    MessageInfo(10, 100, frozenset({"\\Seen"}), 100, datetime.datetime(2026, 11, 2, 23, 0, tzinfo=UTC), 1),
    MessageInfo(20, 200, frozenset({"$Junk", "\\Flagged"}), 200, datetime.datetime(2026, 11, 4, tzinfo=UTC), 2),
    MessageInfo(30, 300, frozenset(), 300, datetime.datetime(2026, 11, 6, tzinfo=UTC), 3),
]


@dataclass
class FakeStore:
    """The slice of AccountStore the engine uses, counting what it reads."""

    infos: list[MessageInfo] = field(default_factory=lambda: list(INFOS))
    raws: dict[int, bytes] = field(default_factory=lambda: dict(RAWS))
    reads: list[int] = field(default_factory=list)
    trees: list[int] = field(default_factory=list)

    def messages(self, mailbox_id: int) -> list[MessageInfo]:
        if mailbox_id != 1:
            raise MailboxNotFound("no such mailbox")
        return self.infos

    def part_tree(self, message_id: int) -> Part:
        self.trees.append(message_id)
        return parse_message(self.raws[message_id])

    def read(self, message_id: int) -> bytes:
        self.reads.append(message_id)
        return self.raws[message_id]

    async def messages_async(self, mailbox_id: int) -> list[MessageInfo]:
        return self.messages(mailbox_id)

    async def part_trees(self, message_ids: list[int]) -> dict[int, Part]:
        return {i: self.part_tree(i) for i in message_ids}

    async def scan_bodies(self, message_ids: list[int], match: Callable[[int, bytes], bool]) -> list[int]:
        return [i for i in message_ids if match(i, self.read(i))]


def run(program: engine.Key, store: FakeStore | None = None, **kwargs: Any) -> list[int]:
    store = store or FakeStore()
    result = asyncio.run(
        engine.search(store, 1, program, scheduler=kwargs.pop("scheduler", engine.InlineScheduler()), **kwargs)  # type: ignore[arg-type]
    )
    return result.uids


@pytest.mark.parametrize(
    ("program", "uids"),
    [
        (All(), [10, 20, 30]),
        (Flag("\\Seen"), [10]),
        (Flag("\\seen", present=False), [20, 30]),
        (Flag("$junk"), [20]),
        (Flag("$NotJunk"), []),
        (Uids(((15, 30),)), [20, 30]),
        (Uids(((30, 15),)), [20, 30]),  # high:low
        (Uids(()), []),
        (Uids(((1, 10), (11, 20))), [10, 20]),
        (Positions(((2, 2), (3, 3))), [20, 30]),
        (Size("larger", 100), [20, 30]),
        (Size("smaller", 200), [10]),
        (Date("received", "on", datetime.date(2026, 11, 2)), [10]),  # 23:00 UTC is still the 2nd
        (Date("received", "before", datetime.date(2026, 11, 4)), [10]),
        (Date("received", "since", datetime.date(2026, 11, 4)), [20, 30]),
        (Date("sent", "since", datetime.date(2026, 11, 3)), [20]),  # 30 has no valid Date:
        (Date("sent", "before", datetime.date(2026, 11, 3)), [10]),
        (ModSeq(200), [20, 30]),
        (engine.Address("from", "ALICE"), [10]),
        (engine.Address("from", "example.org"), [10, 20]),
        (engine.Address("to", "team@"), [10, 20, 30]),
        (engine.Address("cc", "team"), []),
        (Subject("réunion"), [20]),
        (Subject("RÉUNION"), [20]),
        (Header("subject", "invoice"), [30]),
        (Header("X-Missing", ""), []),
        (Header("Date", ""), [10, 20, 30]),
        (Body("noon"), [10]),
        (Body("total: 12"), [30]),  # HTML read as text
        (Body("<b>"), []),
        (Body("lunch"), []),
        (Text("lunch"), [10]),
        (Text("agenda"), [20]),
        (And((Flag("\\Seen", False), Body("agenda"))), [20]),
        (Or((Flag("\\Seen"), Subject("invoice"))), [10, 30]),
        (Not(Or((Flag("\\Seen"), Subject("invoice")))), [20]),
        (Not(Not(Flag("\\Seen"))), [10]),
        (Or((All(), Body("x"))), [10, 20, 30]),
    ],
)
def test_keys(program: engine.Key, uids: list[int]) -> None:
    assert run(program) == uids


def test_view_gives_positions_and_skips_vanished_uids() -> None:
    store = FakeStore()
    result = asyncio.run(
        engine.search(store, 1, Positions(((2, 3),)), scheduler=engine.InlineScheduler(), view=[10, 15, 30])  # type: ignore[arg-type]
    )
    # 15 is no longer in the store: it keeps its position but matches nothing.
    assert [(m.position, m.message.uid) for m in result.matches] == [(3, 30)]
    assert result.highest_modseq == 300


def test_highest_modseq_is_of_the_matches() -> None:
    result = asyncio.run(engine.search(FakeStore(), 1, Flag("\\Seen"), scheduler=engine.InlineScheduler()))  # type: ignore[arg-type]
    assert result.highest_modseq == 100
    result = asyncio.run(engine.search(FakeStore(), 1, Uids(()), scheduler=engine.InlineScheduler()))  # type: ignore[arg-type]
    assert result.matches == () and result.highest_modseq == 0


def test_file_read_only_for_what_cheaper_keys_leave_undecided() -> None:
    store = FakeStore()
    assert run(And((Flag("\\Flagged"), Body("agenda"))), store) == [20]
    assert store.reads == [2] and store.trees == [2]
    store = FakeStore()
    assert run(Subject("lunch"), store) == [10]
    assert store.reads == []
    store = FakeStore()
    assert run(Flag("\\Seen"), store) == [10]
    assert store.trees == []  # index-only keys load no part tree


def test_each_message_decoded_once_however_many_text_keys() -> None:
    calls = 0
    real = engine.body_texts

    def counting(raw: bytes, tree: Part) -> list[str]:
        nonlocal calls
        calls += 1
        return real(raw, tree)

    program = And(tuple(Not(Body(f"needle{i}")) for i in range(200)))
    engine_body_texts = engine.body_texts
    try:
        engine.body_texts = counting  # type: ignore[assignment]
        assert run(program) == [10, 20, 30]
    finally:
        engine.body_texts = engine_body_texts  # type: ignore[assignment]
    assert calls == 3


def test_message_expunged_during_the_search_matches_nothing() -> None:
    class Vanishing(FakeStore):
        async def part_trees(self, message_ids: list[int]) -> dict[int, Part]:
            return {i: self.part_tree(i) for i in message_ids if i != 1}

    assert run(Body("e"), Vanishing()) == [20]


def test_unknown_mailbox_passes_through() -> None:
    with pytest.raises(MailboxNotFound):
        asyncio.run(engine.search(FakeStore(), 2, All(), scheduler=engine.InlineScheduler()))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("program", "error", "text"),
    [
        (And(tuple(Flag(f"k{i}") for i in range(engine.MAX_KEYS))), LimitExceeded, "more than 1000 keys"),
        (And(tuple(All() for _ in range(10_000))), LimitExceeded, "more than 1000 keys"),
        (And(()), InvalidInput, "empty And"),
        (Or(()), InvalidInput, "empty Or"),
        (Body("x" * (engine.MAX_TEXT + 1)), InvalidInput, "longer than"),
        (Size("larger", -1), InvalidInput, "negative"),
        (ModSeq(-5), InvalidInput, "negative"),
    ],
)
def test_program_errors(program: engine.Key, error: type[Exception], text: str) -> None:
    store = FakeStore()
    with pytest.raises(error, match=text):
        run(program, store)
    assert store.reads == [] and store.trees == []  # refused before any work


def test_depth_limit() -> None:
    deep: engine.Key = All()
    for _ in range(engine.MAX_DEPTH + 1):
        deep = Not(deep)
    with pytest.raises(LimitExceeded, match="nested deeper"):
        engine.check_program(deep)
    ok: engine.Key = All()
    for _ in range(engine.MAX_DEPTH):
        ok = Not(ok)
    engine.check_program(ok)


def test_duplicates_and_all_cost_one_test() -> None:
    compiled = engine.compile_program(And((All(), Flag("\\Seen"), Flag("\\Seen"), All())))
    assert isinstance(compiled, engine._Flag)
    assert isinstance(engine.compile_program(And((All(), All()))), engine._True)


def test_large_mailbox_is_searched_in_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    infos = [
        MessageInfo(uid, uid, frozenset(), 10, datetime.datetime(2026, 1, 1, tzinfo=UTC), 1) for uid in range(1, 501)
    ]
    monkeypatch.setattr(engine, "SLICE_SECONDS", 0.0)  # every message ends a slice
    scheduler = engine.InlineScheduler()
    assert run(Uids(((1, 500),)), FakeStore(infos=infos), scheduler=scheduler) == list(range(1, 501))
    assert scheduler.pauses == 500


def test_program_decodes_from_json_and_has_a_schema() -> None:
    wire = b"""{"type": "and", "keys": [{"type": "flag", "flag": "$Junk", "present": false},
              {"type": "or", "keys": [{"type": "subject", "text": "lunch"}, {"type": "body", "text": "agenda"}]}]}"""
    program = msgspec.json.decode(wire, type=engine.Key)
    assert program == And((Flag("$Junk", False), Or((Subject("lunch"), Body("agenda")))))
    assert run(program) == [10]  # 20 has $Junk
    schema = msgspec.json.schema(engine.Key)
    assert {"And", "Flag", "Body"} <= set(schema["$defs"])


def test_ranges_of() -> None:
    assert engine.ranges_of([5, 1, 2, 3, 9, 10]) == ((1, 3), (5, 5), (9, 10))
    assert engine.ranges_of([]) == ()
