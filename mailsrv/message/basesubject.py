"""The base subject of a message (RFC 5256 §2.1): what SORT SUBJECT and threading compare.

`base_subject` takes the subject already decoded from RFC 2047 words (`parse.decode_text`)
and strips, as the RFC's steps say, trailing "(fwd)" and whitespace (step 2), leading
"Re:", "Fw:", "Fwd:" with optional "[blob]"s before and after (step 3), a leading "[blob]"
when something remains after it (step 4), repeating 3-4 (step 5), and a "[fwd: ...]"
wrapper, going back to step 2 (step 6). It also tells whether the subject was a reply or
forward (a subj-refwd, "(fwd)" trailer or "[fwd: ...]" was removed), which the REFERENCES
threading algorithm uses (§3, step 5).

Every step only ever removes text from the ends, and each pass of the loops removes at
least one character, so the cost is linear in the subject's length (bounded anyway by
`MAX_SUBJECT` characters). Matching of "re"/"fw"/"fwd" is case-insensitive; the result keeps
the subject's case (callers compare with a case-insensitive collation).
"""

from __future__ import annotations

import re

MAX_SUBJECT = 4096  # characters considered; a longer subject is cut first

_WSP = re.compile(r"[ \t\r\n]+")
_BLOB = re.compile(r"\[[^\[\]]*\][ \t]*")  # subj-blob
_REFWD = re.compile(r"(?:re|fwd?)[ \t]*(?:\[[^\[\]]*\][ \t]*)?:", re.IGNORECASE)  # subj-refwd


def _strip_leaders(text: str) -> tuple[str, bool]:
    """Step 3: removes subj-leaders, (*subj-blob subj-refwd) / WSP, as often as they occur."""
    refwd = False
    while True:
        if text[:1] in (" ", "\t"):
            text = text.lstrip(" \t")
            continue
        pos = 0
        while (m := _BLOB.match(text, pos)) is not None:
            pos = m.end()
        m = _REFWD.match(text, pos)
        if m is None:
            return text, refwd
        text = text[m.end() :]
        refwd = True


def base_subject(subject: str | None) -> tuple[str, bool]:
    """(base subject, whether the subject marked a reply or forward)."""
    text = _WSP.sub(" ", (subject or "")[:MAX_SUBJECT])  # step 1: one space for each run
    reply_or_forward = False
    while True:
        # Step 2: trailing subj-trailer, "(fwd)" / WSP.
        while True:
            stripped = text.rstrip(" \t")
            if stripped.lower().endswith("(fwd)"):
                stripped = stripped[:-5]
                reply_or_forward = True
            if stripped == text:
                break
            text = stripped
        # Steps 3-5: leaders, then a leading blob when something is left after it. Once step 3
        # finds no subj-refwd after the run of blobs, removing them one by one (step 4, then 3
        # again) ends with what follows the run, or with the run's last blob when nothing does.
        while True:
            text, refwd = _strip_leaders(text)
            reply_or_forward = reply_or_forward or refwd
            pos, last = 0, -1
            while (m := _BLOB.match(text, pos)) is not None:
                last, pos = pos, m.end()
            if last < 0:
                break
            rest = text[pos:] if text[pos:].strip(" \t") else text[last:]
            if rest == text:
                break
            text = rest
        # Step 6: "[fwd: ...]" wrapping the whole rest.
        if text[:5].lower() == "[fwd:" and text.endswith("]"):
            text = text[5:-1]
            reply_or_forward = True
            continue
        return text, reply_or_forward
