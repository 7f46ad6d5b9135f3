"""LIST pattern matching without backtracking (RFC 9051 §6.3.9).

`*` matches any characters, `%` any characters except the hierarchy separator "/".
Matching simulates the pattern as an NFA over the set of reachable pattern positions, so
it takes O(len(name) × len(pattern)) time for any input; a regular expression with
nested wildcards could take exponential time on a crafted pattern.
"""

from __future__ import annotations

SEPARATOR = "/"


class Pattern:
    def __init__(self, pattern: str, *, inbox_case_insensitive: bool = True) -> None:
        # RFC 9051 §5.1: INBOX is case-insensitive, also as the first level of a pattern.
        head, sep, rest = pattern.partition(SEPARATOR)
        if inbox_case_insensitive and head.upper() == "INBOX":
            pattern = "INBOX" + sep + rest
        self.pattern = pattern

    def _closure(self, states: set[int]) -> set[int]:
        # A wildcard may match the empty string: being before it means also being after it.
        out = set(states)
        stack = list(states)
        p = self.pattern
        while stack:
            i = stack.pop()
            if i < len(p) and p[i] in "*%" and i + 1 not in out:
                out.add(i + 1)
                stack.append(i + 1)
        return out

    def _states_after(self, text: str) -> set[int] | None:
        """The pattern positions reachable after reading `text` (linear in len(text) times
        len(pattern), no backtracking), or None when no position is."""
        p = self.pattern
        states = self._closure({0})
        for ch in text:
            nxt: set[int] = set()
            for i in states:
                if i >= len(p):
                    continue
                c = p[i]
                if c == "*" or (c == "%" and ch != SEPARATOR):
                    nxt.add(i)  # the wildcard eats this character and stays
                elif c == ch:
                    nxt.add(i + 1)
            if not nxt:
                return None
            states = self._closure(nxt)
        return states

    def matches(self, name: str) -> bool:
        states = self._states_after(name)
        return states is not None and len(self.pattern) in states

    def could_match_below(self, name: str) -> bool:
        """True when some descendant of `name` (name + "/" + ...) could match: used for
        RECURSIVEMATCH and LSUB \\Noselect parents."""
        return self._states_after(name + SEPARATOR) is not None
