"""Many sessions on one mailbox, each checking that what the server tells it could be true
(issue 11: the multi-session consistency test).

N asyncio clients speaking raw IMAP (not imaplib, which hides the untagged responses) over
implicit TLS to the real daemon select INBOX of one account and, until the time is up, do
random APPEND, STORE, EXPUNGE, MOVE (away and into INBOX itself), FETCH and NOOP. A
`SessionModel` per session follows the sequence-number model from the untagged responses
it receives and fails on anything impossible:

- a message number above the EXISTS the session has seen (FETCH, EXPUNGE, RECENT),
- EXISTS smaller than the messages the session still knows of (only EXPUNGE removes),
- a UID at a number that contradicts the order of UIDs (they ascend with the number),
- flags older than ones already shown: CONDSTORE is on, so every flag FETCH carries the
  message's MODSEQ, which never goes down for a UID (a change "undone"),
- anything but the tagged OK after ``* BYE`` on LOGOUT,
- and, across sessions, one UID shown as \\Recent to two of them.

CI runs it for a few seconds; IMAP_CONSISTENCY_SECONDS=60 (and IMAP_CONSISTENCY_SESSIONS)
runs it longer by hand. IMAP_CONSISTENCY_SEED replays a run's choices.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import ssl
from dataclasses import dataclass, field

from tests.daemon import RunningDaemon

SECONDS = float(os.environ.get("IMAP_CONSISTENCY_SECONDS", "4"))
SESSIONS = int(os.environ.get("IMAP_CONSISTENCY_SESSIONS", "4"))
SEED = int(os.environ.get("IMAP_CONSISTENCY_SEED", str(random.randrange(1 << 30))))
FLAGS = ("\\Seen", "\\Flagged", "\\Answered", "$Work", "$Later")


class Impossible(AssertionError):
    pass


@dataclass
class SessionModel:
    """What one session may believe: `uids[i]` is the UID at number i+1 (None while unknown)."""

    name: str
    uids: list[int | None] = field(default_factory=list)
    modseq: dict[int, int] = field(default_factory=dict)  # highest MODSEQ seen per UID
    recent: set[int] = field(default_factory=set)
    bye: bool = False
    log: list[str] = field(default_factory=list)

    def fail(self, why: str) -> None:
        tail = "\n".join(self.log[-25:])
        raise Impossible(f"{self.name}: {why}\nlast lines:\n{tail}")

    def untagged(self, line: str) -> None:
        self.log.append(line)
        if self.bye:
            self.fail(f"untagged response after BYE: {line}")
        if line.startswith("* BYE"):
            self.bye = True
            return
        m = re.match(r"\* (\d+) (EXISTS|RECENT|EXPUNGE|FETCH)\b(.*)", line)
        if not m:
            return
        n, kind, rest = int(m.group(1)), m.group(2), m.group(3)
        count = len(self.uids)
        if kind == "EXISTS":
            if n < count:
                self.fail(f"EXISTS {n} below the {count} messages not expunged")
            self.uids += [None] * (n - count)
        elif kind == "RECENT":
            if n > count:
                self.fail(f"RECENT {n} above EXISTS {count}")
        elif kind == "EXPUNGE":
            if not 1 <= n <= count:
                self.fail(f"EXPUNGE {n} outside 1..{count}")
            del self.uids[n - 1]
        else:
            if not 1 <= n <= count:
                self.fail(f"FETCH {n} outside 1..{count}")
            self._fetch(n, rest)

    def _fetch(self, n: int, rest: str) -> None:
        uid_m = re.search(r"\bUID (\d+)", rest)
        if uid_m is None:
            return
        uid = int(uid_m.group(1))
        known = self.uids[n - 1]
        if known is not None and known != uid:
            self.fail(f"message {n} is UID {known}, now said to be {uid}")
        below = [u for u in self.uids[: n - 1] if u is not None]
        above = [u for u in self.uids[n:] if u is not None]
        if (below and below[-1] >= uid) or (above and above[0] <= uid):
            self.fail(f"UID {uid} at {n} breaks the ascending order")
        self.uids[n - 1] = uid
        flags_m = re.search(r"\bFLAGS \(([^)]*)\)", rest)
        modseq_m = re.search(r"\bMODSEQ \((\d+)\)", rest)
        if modseq_m is not None:
            modseq = int(modseq_m.group(1))
            if modseq < self.modseq.get(uid, 0):
                self.fail(f"UID {uid}: MODSEQ {modseq} after {self.modseq[uid]} (an older state)")
            self.modseq[uid] = modseq
        if flags_m is not None and "\\Recent" in flags_m.group(1).split():
            self.recent.add(uid)


class Session:
    def __init__(self, model: SessionModel, rng: random.Random) -> None:
        self.model = model
        self.rng = rng
        self.reader: asyncio.StreamReader
        self.writer: asyncio.StreamWriter
        self.tag = 0

    async def connect(self, port: int) -> None:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
        await self.reader.readline()

    async def command(self, text: str, literal: bytes | None = None) -> str:
        self.tag += 1
        tag = f"{self.model.name}.{self.tag}"
        data = f"{tag} {text}".encode()
        if literal is not None:
            data += b" {%d+}\r\n" % len(literal) + literal
        self.writer.write(data + b"\r\n")
        while True:
            raw = await asyncio.wait_for(self.reader.readline(), 20)
            if not raw:
                self.model.fail(f"connection closed during {text}")
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if line.startswith(tag + " "):
                self.model.log.append(line)
                status = line.split()[1]
                if status == "BAD":
                    self.model.fail(f"BAD for {text}: {line}")
                return status
            if line.startswith("*"):
                self.model.untagged(line)

    async def random_step(self, appended: list[int]) -> None:
        rng = self.rng
        count = len(self.model.uids)
        some = f"{rng.randint(1, count)}" if count else None
        op = rng.choices(
            ["append", "store", "uidstore", "expunge", "move_away", "move_here", "fetch", "noop"],
            [3, 4, 2, 1, 1, 1, 3, 1],
        )[0]
        flag = rng.choice(FLAGS)
        sign = rng.choice("+-")
        if op == "append":
            appended[0] += 1
            body = f"From: c@example.org\r\nSubject: {appended[0]}\r\n\r\nbody {appended[0]}\r\n".encode()
            await self.command("APPEND INBOX (%s)" % (flag if rng.random() < 0.3 else ""), body)
        elif op == "store" and some:
            if rng.random() < 0.2:
                flag = "\\Deleted"
            await self.command(f"STORE {some} {sign}FLAGS ({flag})")
        elif op == "uidstore" and self.model.modseq:
            uid = rng.choice(list(self.model.modseq))
            await self.command(f"UID STORE {uid} {sign}FLAGS ({flag})")
        elif op == "expunge":
            await self.command("EXPUNGE")
        elif op == "move_away" and some:
            await self.command(f"MOVE {some} Archive")
        elif op == "move_here" and some:
            await self.command(f"MOVE {some} INBOX")
        elif op == "fetch" and count:
            await self.command("FETCH 1:* (UID FLAGS)")
        else:
            await self.command("NOOP")

    async def logout(self) -> None:
        self.tag += 1
        tag = f"{self.model.name}.{self.tag}"
        self.writer.write(f"{tag} LOGOUT\r\n".encode())
        saw_ok = False
        while True:
            raw = await asyncio.wait_for(self.reader.readline(), 20)
            if not raw:
                break
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if saw_ok:
                self.model.fail(f"after the tagged OK of LOGOUT: {line}")
            if line.startswith(tag + " OK"):
                if not self.model.bye:
                    self.model.fail("LOGOUT without BYE")
                saw_ok = True
            elif line.startswith("*"):
                self.model.untagged(line)
            else:
                self.model.fail(f"unexpected line at LOGOUT: {line}")
        self.writer.close()


async def run(port: int, seconds: float, sessions: int, seed: int) -> list[SessionModel]:
    models = [SessionModel(f"s{i}") for i in range(sessions)]
    clients = [Session(m, random.Random(seed + i)) for i, m in enumerate(models)]
    for c in clients:
        await c.connect(port)
        assert await c.command('LOGIN "alice@example.org" "alicepass"') == "OK"
        assert await c.command("ENABLE CONDSTORE") == "OK"
        assert await c.command("SELECT INBOX") == "OK"
    appended = [0]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds

    async def drive(c: Session) -> None:
        while loop.time() < deadline:
            await c.random_step(appended)
        await c.command("FETCH 1:* (UID FLAGS)")
        await c.logout()

    await asyncio.gather(*(drive(c) for c in clients))
    return models


def test_sessions_only_see_possible_states(daemon: RunningDaemon) -> None:
    models = asyncio.run(run(daemon.ports["imaps"], SECONDS, SESSIONS, SEED))
    seen: dict[int, str] = {}
    for m in models:
        for uid in m.recent:
            other = seen.get(uid)
            assert other is None, f"UID {uid} was \\Recent in {other} and {m.name} (seed {SEED})"
            seen[uid] = m.name
    steps = sum(len(m.log) for m in models)
    assert steps > 20 * SESSIONS, f"too little happened ({steps} lines; seed {SEED})"
