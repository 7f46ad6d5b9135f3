"""Threading (mailsrv.ops.thread, RFC 5256 §3) on hand-built summaries: every step of
REFERENCES, ORDEREDSUBJECT, the THREAD response syntax, and the cost bounds."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

from mailsrv.message.basesubject import base_subject
from mailsrv.ops import thread as threading
from mailsrv.ops.sort import Summary
from mailsrv.ops.thread import Node, ordered_subject, thread_text


def msg(
    n: int,
    subject: str = "s",
    sent: int | None = None,
    mid: str | None = "auto",
    irt: tuple[str, ...] = (),
    refs: tuple[str, ...] = (),
) -> Summary:
    base, reply = base_subject(subject)
    return Summary(
        position=n,
        uid=100 + n,
        size=10,
        arrival=n,
        sent=n if sent is None else sent,
        from_="",
        to="",
        cc="",
        display_from="",
        display_to="",
        subject=base,
        reply_or_forward=reply,
        message_id=f"m{n}@x" if mid == "auto" else (mid or ""),
        in_reply_to=irt,
        references=refs,
    )


def text(roots: list[Node]) -> str:
    return thread_text(roots, uid=False).decode()


def refs(*ids: int) -> tuple[str, ...]:
    return tuple(f"m{i}@x" for i in ids)


def references(items: list[Summary], chains: Sequence[Sequence[str]] | None = None) -> list[Node]:
    """REFERENCES threading of `items`, the i-th with the References ids `chains[i]`."""
    if chains is not None:
        items = [dataclasses.replace(s, references=tuple(r)) for s, r in zip(items, chains, strict=True)]
    return threading.references(items)


def test_references_chain_and_branches() -> None:
    items = [msg(1, "a"), msg(2, "Re: a"), msg(3, "Re: a"), msg(4, "Re: a"), msg(5, "other")]
    r = [[], refs(1), refs(1, 2), refs(1), []]
    assert text(references(items, r)) == "(1 (2 3)(4))(5)"
    assert thread_text(references(items, r), uid=True) == b"(101 (102 103)(104))(105)"


def test_in_reply_to_when_no_references() -> None:
    items = [msg(1, "a"), msg(2, "x", irt=("m1@x", "m9@x")), msg(3, "y")]
    assert text(references(items)) == "(1 2)(3)"


def test_missing_parent_is_a_dummy_kept_only_at_the_top_with_several_children() -> None:
    # 2 and 3 both answer the absent 1: a dummy root with two children.
    items = [msg(2, "x"), msg(3, "y")]
    assert text(references(items, [refs(1), refs(1)])) == "((2)(3))"
    # One child only: promoted to the top.
    assert text(references([msg(2, "x")], [refs(1)])) == "(2)"
    # Below the top, a dummy's children take its place: 1 -> (absent 9) -> 2, 3.
    items = [msg(1, "x"), msg(2, "y"), msg(3, "z")]
    assert text(references(items, [[], refs(1, 9), refs(1, 9)])) == "(1 (2)(3))"


def test_messages_out_of_order_and_late_parent() -> None:
    # The reply comes first in the mailbox; its parent arrives later (sent earlier).
    items = [msg(1, "Re: a", sent=20), msg(2, "a", sent=10)]
    assert text(references(items, [refs(2), []])) == "(2 1)"


def test_duplicate_and_missing_message_ids() -> None:
    items = [msg(1, "a"), msg(2, "b", mid="m1@x"), msg(3, "c", mid=None), msg(4, "Re: a")]
    # 2 duplicates 1's id: it gets a unique id of its own, 4 hangs below the first holder.
    assert text(references(items, [[], [], [], refs(1)])) == "(1 4)(2)(3)"


def test_loops_are_not_created() -> None:
    items = [msg(1, "a"), msg(2, "b"), msg(3, "c")]
    # 1 says its parent is 3, 3 says 2, 2 says 1: the last link would close a loop.
    result = text(references(items, [refs(3), refs(1), refs(2)]))
    assert sorted(result.replace("(", " ").replace(")", " ").split()) == ["1", "2", "3"]
    assert result.count("(") == 1  # one thread: 3 -> 1 -> 2 in some rotation, no loop
    # A message referring to itself.
    assert text(references([msg(1, "a")], [refs(1)])) == "(1)"


def test_later_references_replace_a_parent_from_an_earlier_chain() -> None:
    # 3's References say 1 2; then 4 says 2 is below 1... and 3's own parent is 2 (step 1B).
    items = [msg(1, "a"), msg(2, "b"), msg(3, "c")]
    assert text(references(items, [[], refs(1), refs(1, 2)])) == "(1 2 3)"


def test_subject_merging() -> None:
    # Step 5: roots with the same base subject are gathered.
    # (a) a reply root goes below the non-reply root.
    items = [msg(1, "Re: lunch", sent=1), msg(2, "lunch", sent=2)]
    assert text(references(items, [[], []])) == "(2 1)"
    # (b) two non-replies: a dummy above both.
    items = [msg(1, "lunch"), msg(2, "lunch")]
    assert text(references(items, [[], []])) == "((1)(2))"
    # (c) a dummy root (two answers to an absent message) takes a root of the same subject.
    items = [msg(1, "Re: lunch"), msg(2, "Re: lunch"), msg(3, "lunch")]
    assert text(references(items, [refs(9), refs(9), []])) == "((1)(2)(3))"
    # (d) empty subjects are never merged.
    items = [msg(1, ""), msg(2, "")]
    assert text(references(items, [[], []])) == "(1)(2)"


def test_siblings_sorted_by_sent_date_with_dummy_as_its_first_child() -> None:
    items = [msg(1, "x", sent=50), msg(2, "y", sent=30), msg(3, "z", sent=40), msg(4, "w", sent=10)]
    # 2 and 3 answer absent 9 (dummy sorts as 2, sent 30); 1 and 4 stand alone.
    assert text(references(items, [[], refs(9), refs(9), []])) == "(4)((2)(3))(1)"
    # Equal dates: view order.
    items = [msg(2, "x", sent=5), msg(1, "y", sent=5)]
    assert text(references(items, [[], []])) == "(1)(2)"


def test_ordered_subject() -> None:
    items = [
        msg(1, "lunch", sent=10),
        msg(2, "Re: lunch", sent=30),
        msg(3, "beer", sent=20),
        msg(4, "Fwd: lunch", sent=25),
        msg(5, "[list] beer", sent=5),
        msg(6, "Re: Lunch", sent=40),  # subjects compare case-insensitively
    ]
    assert text(ordered_subject(items)) == "(5 3)(1 (4)(2)(6))"
    assert text(ordered_subject([])) == ""


def test_deep_chain_is_fast_and_not_recursive() -> None:
    n = 10_000
    items = [msg(i, "Re: deep" if i > 1 else "deep") for i in range(1, n + 1)]
    # Each message lists every earlier one (a long real-world thread), but bounded to 200.
    r = [refs(*range(max(1, i - 200), i)) for i in range(1, n + 1)]
    start = time.process_time()
    roots = references(items, r)
    out = text(roots)
    assert time.process_time() - start < 5
    assert out.startswith("(1 2 3 ") and out.endswith(f" {n})")
    # Reversed arrival order: every message's parent comes later, the walk stays bounded.
    start = time.process_time()
    roots = references(list(reversed(items)), list(reversed(r)))
    assert time.process_time() - start < 10
    assert text(roots) == out


def test_many_siblings_and_subjects_are_linear() -> None:
    n = 20_000
    items = [msg(i, f"subject {i % 500}") for i in range(1, n + 1)]
    start = time.process_time()
    references(items, [[] for _ in items])
    ordered_subject(items)
    assert time.process_time() - start < 5
