"""The store against a plain-Python model: random operation sequences (several seeds) must
leave every mailbox with exactly the UIDs, flags, UIDNEXT and counters the model predicts,
modseqs that grow with every change, and VANISHED data that names every expunged UID."""

from __future__ import annotations

import random
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from twisted.trial.unittest import TestCase

from mailsrv.store import SQLiteStoreRegistry
from mailsrv.store.interfaces import FlagMode
from tests.store.test_semantics import assert_counters_agree

FLAGS = ["\\Seen", "\\Deleted", "\\Flagged", "$Work", "$work", "\\Answered"]
NAMES = ["INBOX", "Archive", "Trash", "Lists/a"]


@dataclass
class ModelBox:
    uidnext: int = 1
    messages: dict[int, tuple[frozenset[str], bytes]] = field(default_factory=dict)
    expunged: set[int] = field(default_factory=set)


def _norm(flags: frozenset[str]) -> frozenset[str]:
    return frozenset(f.lower() for f in flags)


class ModelTests(TestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mailsrv-store-model-"))
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.registry = SQLiteStoreRegistry(self.dir)
        self.addCleanup(self.registry.close_all)

    async def _play(self, seed: int) -> None:
        rng = random.Random(seed)
        s = self.registry.open(f"model{seed}")
        await s.create_mailbox("Lists/a")
        model = {n: ModelBox() for n in NAMES}
        modseq_seen = {n: s.mailbox(n).highest_modseq for n in NAMES}
        for step in range(150):
            name = rng.choice(NAMES)
            box = s.mailbox(name)
            mb = model[name]
            uids = sorted(mb.messages)
            pick = [*rng.sample(uids, min(len(uids), rng.randint(1, 3))), rng.randint(1, 300)]
            op = rng.randrange(6)
            if op == 0 or not uids:
                data = f"Subject: {seed}/{step}\r\n\r\n".encode() + b"b" * rng.randrange(100)
                flags = frozenset(rng.sample(FLAGS, rng.randint(0, 2)))
                r = await s.append(name, data, flags=flags)
                self.assertEqual(r.uid, mb.uidnext)
                mb.messages[r.uid] = (flags, data)
                mb.uidnext += 1
            elif op == 1:
                mode = rng.choice([FlagMode.ADD, FlagMode.REMOVE, FlagMode.REPLACE])
                given = frozenset(rng.sample(FLAGS, rng.randint(0, 2)))
                result = await s.store_flags(box.id, pick, mode, given)
                for uid in set(pick) & set(uids):
                    old = _norm(mb.messages[uid][0])
                    g = _norm(given)
                    new = old | g if mode == FlagMode.ADD else old - g if mode == FlagMode.REMOVE else g
                    mb.messages[uid] = (frozenset(new), mb.messages[uid][1])
                    changed = {m.uid for m in result.changed}
                    self.assertEqual(uid in changed, new != old, (step, uid))
            elif op == 2:
                limit = pick if rng.random() < 0.5 else None
                gone = await s.expunge(box.id, limit)
                expected = sorted(
                    u for u, (f, _) in mb.messages.items() if "\\deleted" in _norm(f) and (limit is None or u in limit)
                )
                self.assertEqual(list(gone), expected)
                for u in gone:
                    del mb.messages[u]
                    mb.expunged.add(u)
            elif op in (3, 4):
                dest = rng.choice([n for n in NAMES if n != name])
                md = model[dest]
                result = await (s.copy if op == 3 else s.move)(box.id, pick, dest)
                existing = sorted(set(pick) & set(uids))
                self.assertEqual(list(result.source_uids), existing)
                self.assertEqual(list(result.dest_uids), list(range(md.uidnext, md.uidnext + len(existing))))
                for src, new in zip(result.source_uids, result.dest_uids, strict=True):
                    md.messages[new] = mb.messages[src]
                    if op == 4:
                        del mb.messages[src]
                        mb.expunged.add(src)
                md.uidnext += len(existing)
            else:
                vanished = s.changes_since(box.id, 0).vanished
                self.assertEqual(set(vanished), mb.expunged)
            # After every step: the store agrees with the model, modseqs never go back.
            for n in NAMES:
                info = s.mailbox(n)
                self.assertGreaterEqual(info.highest_modseq, modseq_seen[n])
                modseq_seen[n] = info.highest_modseq
            got = {m.uid: _norm(m.flags) for m in s.messages(box.id)}
            self.assertEqual(got, {u: _norm(f) for u, (f, _) in mb.messages.items()}, step)
        for n in NAMES:
            info = s.mailbox(n)
            self.assertEqual(info.uidnext, model[n].uidnext)
            for m in s.messages(info.id):
                self.assertEqual(s.read(m.message_id), model[n].messages[m.uid][1])
        assert_counters_agree(s)

    async def test_seed_1(self) -> None:
        await self._play(1)

    async def test_seed_2(self) -> None:
        await self._play(2)

    async def test_seed_3(self) -> None:
        await self._play(3)
