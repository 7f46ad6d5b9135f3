"""Small hand-made messages for junk-filter tests: spam-like and ham-like, with variations."""

from __future__ import annotations

SPAM_WORDS = ["viagra", "casino", "winner", "lottery", "bitcoin", "discount", "unsubscribe", "offer", "cheap", "pills"]
HAM_WORDS = ["meeting", "agenda", "review", "patch", "release", "kernel", "thanks", "tomorrow", "minutes", "draft"]


def message(words: list[str], n: int, sender: str = "someone@example.net", extra: str = "") -> bytes:
    subject = " ".join(words[n % len(words) : n % len(words) + 2])
    body = " ".join(words[(n + i) % len(words)] for i in range(12))
    return (
        f"From: Someone <{sender}>\r\nTo: alice@example.org\r\nSubject: {subject} {n}\r\n"
        f"Message-ID: <{n}.{abs(hash(tuple(words))) % 1000}@example.net>\r\n{extra}\r\n{body} number{n}\r\n"
    ).encode()


def spam(n: int, **kw: str) -> bytes:
    return message(SPAM_WORDS, n, **kw)


def ham(n: int, **kw: str) -> bytes:
    return message(HAM_WORDS, n, **kw)
