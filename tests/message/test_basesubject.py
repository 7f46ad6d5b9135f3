"""Base subject extraction (RFC 5256 §2.1) with the RFC's leader/blob/trailer forms."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailsrv.message.basesubject import MAX_SUBJECT, base_subject


@pytest.mark.parametrize(
    ("subject", "base", "reply"),
    [
        ("hello", "hello", False),
        ("Re: hello", "hello", True),
        ("RE: re: hello", "hello", True),
        ("Fwd: hello", "hello", True),
        ("FW: hello", "hello", True),
        ("Fw : hello", "hello", True),  # *WSP before ":"
        ("Re[2]: hello", "hello", True),  # subj-blob inside subj-refwd
        ("Re: [list] Re: hello", "hello", True),
        ("[list] Re: hello", "hello", True),  # blobs before a subj-refwd are a leader
        ("[list] hello", "hello", False),  # step 4: a leading blob with text after it
        ("[a] [b] hello", "hello", False),
        ("[list]", "[list]", False),  # nothing would be left: the blob stays
        ("[a][b]", "[b]", False),  # the last blob stays
        ("hello (fwd)", "hello", True),  # step 2 trailer
        ("hello (FWD) (fwd)  ", "hello", True),
        ("[fwd: hello]", "hello", True),  # step 6
        ("[Fwd: Re: [list] hello (fwd)]", "hello", True),
        ("Re: [fwd: Re: hello]", "hello", True),
        ("  hello \t  world  ", "hello world", False),  # step 1: whitespace runs
        ("Reply: hello", "Reply: hello", False),  # not a subj-refwd
        ("Re hello", "Re hello", False),  # no colon
        ("Re:", "", True),
        ("", "", False),
        (None, "", False),
        ("Réponse: Re: élan", "Réponse: Re: élan", False),  # "Re:" after other text is text
    ],
)
def test_examples(subject: str | None, base: str, reply: bool) -> None:
    assert base_subject(subject) == (base, reply)


_pieces = st.sampled_from(
    ["Re:", "re :", "Fwd:", "fw:", "[x]", "[]", " ", "\t", "(fwd)", "[fwd:", "]", "a", "b c", "é"]
)


@given(st.lists(_pieces, max_size=30).map("".join))
def test_idempotent_and_never_longer(subject: str) -> None:
    base, _ = base_subject(subject)
    assert base_subject(base)[0] == base
    assert len(base) <= len(subject)
    assert base == base.strip(" \t") or base.startswith("[")


def test_hostile_subject_is_linear() -> None:
    import time

    for subject in ("[]" * 5000, "Re: " * 5000, "[x] " * 5000 + "y", "(fwd)" * 5000, "[fwd:" * 3000 + "]" * 3000):
        start = time.process_time()
        base_subject(subject)
        assert time.process_time() - start < 0.2, subject[:20]
    assert len(base_subject("x" * 10 * MAX_SUBJECT)[0]) == MAX_SUBJECT
