"""LIST pattern matching (mailsrv/imapserver/listmatch.py): the same answers as a plain
regular-expression reading of the wildcards, and a cost linear in pattern × name length
whatever the pattern (issue 17 item 2: `"*%" × 2000 + "Q"` took 30 s)."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailsrv.imapserver.listmatch import Pattern, simplify


def _reference(pattern: str, name: str) -> bool:
    # Backtracking regex: fine for the short strings hypothesis draws.
    rx = "".join(".*" if c == "*" else "[^/]*" if c == "%" else re.escape(c) for c in pattern)
    return re.fullmatch(rx, name, re.DOTALL) is not None


_chars = st.sampled_from("ab/*%")


@given(st.text(_chars, max_size=12), st.text(st.sampled_from("ab/"), max_size=12))
def test_matches_like_the_regular_expression(pattern: str, name: str) -> None:
    assert Pattern(pattern, inbox_case_insensitive=False).matches(name) == _reference(pattern, name)


def test_simplify_collapses_wildcard_runs() -> None:
    assert simplify("*%" * 2000 + "Q") == "*Q"
    assert simplify("a%%b%*%c") == "a%b*c"
    assert simplify("%%%") == "%"


def test_inbox_is_case_insensitive() -> None:
    assert Pattern("inbox/%").matches("INBOX/x")
    assert Pattern("InBoX").matches("INBOX")


def test_hostile_patterns_cost_little() -> None:
    names = [f"folder{i}/" + "x" * 90 + f"/sub{i}" for i in range(200)]
    # Runs of wildcards (the pattern) and a pattern of 1,024 characters that does not
    # simplify: the bit-parallel NFA keeps each under a few milliseconds per 200 names.
    for raw in ("*%" * 2000 + "Q", "*x" * 512, "%/" * 512):
        pattern = Pattern(raw)
        started = time.process_time()
        for name in names:
            pattern.matches(name)
        assert time.process_time() - started < 0.5, raw[:20]


def test_list_matching_yields_to_the_reactor_between_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    """LIST over many names gives other connections a turn every SLICE_SECONDS."""
    from types import SimpleNamespace

    from twisted.internet.defer import ensureDeferred
    from twisted.internet.task import Clock

    from mailsrv.imapserver import cmd_list

    clock = Clock()
    session = SimpleNamespace(server=SimpleNamespace(reactor=clock))
    monkeypatch.setattr(cmd_list, "SLICE_SECONDS", -1.0)  # yield after every name
    monkeypatch.setattr(cmd_list, "SLICE_CHECK", 1)
    d = ensureDeferred(cmd_list._matching(session, ["a", "b/c", "d"], [Pattern("%")]))  # type: ignore[arg-type]
    assert not d.called
    for _ in range(3):
        clock.advance(0)
    assert d.result == {"a", "d"}
