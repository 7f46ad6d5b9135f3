"""`mailsrv rules list|add|rm ACCOUNT`: per-account delivery rulesets (see mailsrv/rules.py).

The admin operations (`rules.*`) validate a ruleset exactly as loading `data/rules.toml`
does (pattern length, regexp syntax, a condition and an action) before writing the file.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from mailsrv.admin import JSON, AdminError, command
from mailsrv.rules import RulesError, Ruleset
from mailsrv.server import Server


def _account(server: Server, args: dict[str, Any]) -> str:
    name = args.get("account")
    if not isinstance(name, str) or server.dynamic.account_by_name(name) is None:
        raise AdminError(f"no such account: {name}")
    return name


def _store(server: Server) -> Any:
    if server.rules is None:
        raise AdminError("rulesets are not available")
    return server.rules


@command("rules.list")
def rules_list(server: Server, args: dict[str, Any]) -> JSON:
    return [r.to_dict() for r in _store(server).for_account(_account(server, args))]


@command("rules.add")
def rules_add(server: Server, args: dict[str, Any]) -> JSON:
    account = _account(server, args)
    spec = args.get("ruleset")
    if not isinstance(spec, dict):
        raise AdminError("missing argument: ruleset")
    try:
        ruleset = Ruleset.from_dict(spec)
    except RulesError as e:
        raise AdminError(str(e)) from None
    store = _store(server)
    store.set_account(account, [*store.for_account(account), ruleset])
    return {"index": len(store.for_account(account))}


@command("rules.rm")
def rules_rm(server: Server, args: dict[str, Any]) -> JSON:
    account = _account(server, args)
    index = args.get("index")
    store = _store(server)
    current = list(store.for_account(account))
    if not isinstance(index, int) or not 1 <= index <= len(current):
        raise AdminError(f"no ruleset {index} for {account}")
    del current[index - 1]
    store.set_account(account, current)
    return {}


def cmd_rules(args: argparse.Namespace) -> None:
    from mailsrv.cli import admin_call

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
    a = rsub.add_parser("list")
    a.add_argument("account")
    a = rsub.add_parser("add")
    a.add_argument("account")
    a.add_argument("--smtp-mail-from", help="regexp on the SMTP MAIL FROM address")
    a.add_argument("--msg-from", help="regexp on the From: address")
    a.add_argument("--verified-domain", help="a domain that passed SPF or DKIM")
    a.add_argument("--header", nargs=2, action="append", metavar=("NAME_RE", "VALUE_RE"))
    a.add_argument("--mailbox", help="deliver into this mailbox")
    a.add_argument("--is-list", action="store_true", help="mailing list (List-Id within --verified-domain)")
    a.add_argument("--accept-regardless", action="store_true", help="skip the reputation/junk verdict")
    a.add_argument("--comment", default="")
    a = rsub.add_parser("rm")
    a.add_argument("account")
    a.add_argument("index", type=int, help="1-based, as `rules list` shows")
    p.set_defaults(func=cmd_rules)
