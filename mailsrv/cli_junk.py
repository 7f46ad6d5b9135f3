"""`mailsrv junk train|untrain|check|stats|analyze|retrain|settings ACCOUNT ...`: an account's junk filter.

A thin adapter over `mailsrv.ops.junk` (operations `junk.*`). FILES are message files (RFC 5322) or mbox files
(first line "From "), "-" for standard input. Messages travel base64-encoded through the control socket, in
batches that stay under its request limit; a single message too large for one request is skipped with a warning.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import sys
from collections.abc import Iterator
from typing import Any

from mailsrv.cli_common import CLIError, admin_call

# The control socket takes requests of up to 1 MiB; base64 grows data by a third.
_BATCH_BYTES = 600 * 1024
_LONG_TIMEOUT = 3600.0
_MBOX_SEPARATOR = re.compile(rb"^From .*$", re.MULTILINE)


def _messages(files: list[str]) -> Iterator[tuple[str, bytes]]:
    for name in files:
        data = sys.stdin.buffer.read() if name == "-" else _read(name)
        if data.startswith(b"From "):
            pieces = _MBOX_SEPARATOR.split(data)
            for n, piece in enumerate(p for p in pieces if p.strip()):
                # mboxrd: one ">" less before "From " lines that were quoted.
                body = re.sub(rb"(?m)^>(>*From )", rb"\1", piece.lstrip(b"\r\n"))
                yield f"{name}#{n + 1}", body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        else:
            yield name, data


def _read(name: str) -> bytes:
    try:
        with open(name, "rb") as f:
            return f.read()
    except OSError as e:
        raise CLIError(f"{name}: {e.strerror}") from None


def _batches(files: list[str]) -> Iterator[list[str]]:
    batch: list[str] = []
    size = 0
    for name, raw in _messages(files):
        encoded = base64.b64encode(raw).decode("ascii")
        if len(encoded) > _BATCH_BYTES:
            print(f"{name}: skipped, larger than {_BATCH_BYTES * 3 // 4} bytes", file=sys.stderr)
            continue
        if batch and size + len(encoded) > _BATCH_BYTES:
            yield batch
            batch, size = [], 0
        batch.append(encoded)
        size += len(encoded)
    if batch:
        yield batch


def _setting_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text  # a bare string: mailbox names, "reject"


def cmd_junk(args: argparse.Namespace) -> None:
    account = args.account
    if args.action in ("train", "untrain"):
        changed = unchanged = 0
        for batch in _batches(args.files):
            params = {"account": account, "messages": batch, "junk": bool(getattr(args, "junk", True))}
            result = admin_call(args, f"junk.{args.action}", params, timeout=_LONG_TIMEOUT)
            changed += result["changed"]
            unchanged += result["unchanged"]
        kind = "" if args.action == "untrain" else (" as junk" if args.junk else " as not junk")
        print(f"{args.action}ed {changed} message(s){kind}; {unchanged} unchanged")
    elif args.action == "check":
        for name, raw in _messages(args.files):
            message = base64.b64encode(raw).decode("ascii")
            r = admin_call(args, "junk.check", {"account": account, "message": message})
            score = "none" if r["score"] is None else f"{r['score']:.4f}"
            verdict = "junk" if r["junk"] else "not junk"
            extra = f" ({r['reason']})" if r["reason"] else ""
            known = "; known sender: the filter is skipped at delivery" if r["known_sender"] else ""
            trained = f"; trained as {r['trained_as']}" if r["trained_as"] else ""
            print(f"{name}: score {score} (threshold {r['threshold']}): {verdict}{extra}{known}{trained}")
            for w in r["words"][: args.words]:
                print(f"  {w['probability']:.4f}  ham {w['ham']:>5}  junk {w['spam']:>5}  {w['word']}")
    elif args.action == "stats":
        r = admin_call(args, "junk.stats", {"account": account})
        print(f"trained: {r['ham_messages']} not junk, {r['spam_messages']} junk; {r['words']} words known")
    elif args.action == "retrain":
        r = admin_call(args, "junk.retrain", {"account": account}, timeout=_LONG_TIMEOUT)
        print(f"retrained from the mailboxes: {r['ham']} not junk, {r['spam']} junk")
    elif args.action == "analyze":
        r = admin_call(args, "junk.analyze", {"account": account, "folds": args.folds}, timeout=_LONG_TIMEOUT)
        print(
            f"{args.folds}-fold cross-validation on {r['ham']} not-junk and {r['spam']} junk messages at threshold "
            f"{r['threshold']}: precision {r['precision']:.3f}, recall {r['recall']:.3f}, "
            f"{r['false_positives']} false positive(s), {r['false_negatives']} missed"
        )
    else:
        if args.set:
            changes: dict[str, Any] = {}
            for item in args.set:
                key, sep, value = item.partition("=")
                if not sep:
                    raise CLIError(f"--set {item!r}: expected NAME=VALUE")
                changes[key.strip()] = _setting_value(value)
            settings = admin_call(args, "junk.configure", {"account": account, "settings": changes})
        else:
            settings = admin_call(args, "junk.settings", {"account": account})
        for key, value in settings.items():
            print(f"{key} = {json.dumps(value, ensure_ascii=False)}")


def install(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "junk",
        help="an account's junk filter: train, untrain, check, stats, analyze, retrain, settings",
        description="Train and inspect an account's Bayesian junk filter (docs/junk.md).",
    )
    jsub = p.add_subparsers(dest="action", required=True)
    a = jsub.add_parser("train", help="train messages as junk (--junk) or not junk (--ham)")
    a.add_argument("account")
    kind = a.add_mutually_exclusive_group(required=True)
    kind.add_argument("--junk", dest="junk", action="store_true", help="the messages are junk")
    kind.add_argument("--ham", dest="junk", action="store_false", help="the messages are not junk")
    a.add_argument("files", nargs="+", metavar="FILE", help="message or mbox files, - for standard input")
    a = jsub.add_parser("untrain", help="forget the training of these messages exactly")
    a.add_argument("account")
    a.add_argument("files", nargs="+", metavar="FILE")
    a = jsub.add_parser("check", help="print the score of messages and the words that decided it")
    a.add_argument("account")
    a.add_argument("files", nargs="+", metavar="FILE")
    a.add_argument("--words", type=int, default=20, help="how many deciding words to print (default 20)")
    a = jsub.add_parser("stats", help="how many messages were trained, how many words are known")
    a.add_argument("account")
    a = jsub.add_parser("analyze", help="cross-validate on the account's own junk and not-junk mailboxes")
    a.add_argument("account")
    a.add_argument("--folds", type=int, default=10)
    a = jsub.add_parser("retrain", help="forget everything and train from the junk and not-junk mailboxes")
    a.add_argument("account")
    a = jsub.add_parser("settings", help="show the settings, or change them with --set NAME=VALUE")
    a.add_argument("account")
    a.add_argument("--set", action="append", metavar="NAME=VALUE", help="e.g. threshold=0.9, action=reject")
    p.set_defaults(func=cmd_junk)
