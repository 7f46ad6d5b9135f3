"""`mailsrv rules list|add|rm ACCOUNT`: per-account delivery rulesets (see mailsrv/rules.py).

A thin adapter over `mailsrv.ops.rules` (operations `rules.*`), which validates a ruleset
exactly as loading `data/rules.toml` does before writing the file.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from mailsrv.cli_common import admin_call


def cmd_rules(args: argparse.Namespace) -> None:
    if args.action == "add":
        spec: dict[str, Any] = {
            k: getattr(args, k)
            for k in ("smtp_mail_from", "msg_from", "verified_domain", "mailbox", "comment")
            if getattr(args, k)
        }
        if args.header:
            spec["headers"] = [list(h) for h in args.header]
        if args.is_list:
            spec["is_list"] = True
        if args.accept_regardless:
            spec["accept_regardless"] = True
        row = admin_call(args, "rules.add", {"account": args.account, "ruleset": spec})
        print(f"ruleset {row['index']} added for {args.account}")
    elif args.action == "rm":
        admin_call(args, "rules.rm", {"account": args.account, "index": args.index})
        print(f"ruleset {args.index} of {args.account} removed")
    else:
        for i, rs in enumerate(admin_call(args, "rules.list", {"account": args.account}), 1):
            print(f"{i}\t{json.dumps(rs, ensure_ascii=False)}")


def install(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("rules", help="per-account delivery rulesets: list, add, rm (first match wins)")
    rsub = p.add_subparsers(dest="action", required=True)
    a = rsub.add_parser("list", help="an account's rulesets, numbered in the order they are tried")
    a.add_argument("account")
    a = rsub.add_parser("add", help="append a ruleset: conditions (all must match) and what to do")
    a.add_argument("account")
    a.add_argument("--smtp-mail-from", help="regexp on the SMTP MAIL FROM address")
    a.add_argument("--msg-from", help="regexp on the From: address")
    a.add_argument("--verified-domain", help="a domain that passed SPF or DKIM")
    a.add_argument("--header", nargs=2, action="append", metavar=("NAME_RE", "VALUE_RE"))
    a.add_argument("--mailbox", help="deliver into this mailbox")
    a.add_argument("--is-list", action="store_true", help="mailing list (List-Id within --verified-domain)")
    a.add_argument("--accept-regardless", action="store_true", help="skip the reputation/junk verdict")
    a.add_argument("--comment", default="")
    a = rsub.add_parser("rm", help="remove a ruleset by its number")
    a.add_argument("account")
    a.add_argument("index", type=int, help="1-based, as `rules list` shows")
    p.set_defaults(func=cmd_rules)
