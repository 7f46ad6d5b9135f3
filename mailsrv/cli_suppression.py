"""`mailsrv suppression list|add|rm|present ACCOUNT [ADDRESS]`: an account's suppression list
(addresses the queue no longer delivers to) from the command line.

A thin adapter over `mailsrv.ops.suppressions` (operations `suppression.*`), run in the daemon
over the control socket, or on the files when no daemon runs.
"""

from __future__ import annotations

import argparse
import time

from mailsrv.cli_common import admin_call, print_json


def cmd_suppression(args: argparse.Namespace) -> None:
    if args.action == "list":
        rows = admin_call(args, "suppression.list", {"account": args.account})
        if args.json:
            print_json(rows)
            return
        for r in rows:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r["created"]))
            how = "manual" if r["manual"] else "automatic"
            print(f"{r['base_address']}\t{r['original_address']}\t{when} UTC\t{how}\t{r['reason'] or '-'}")
    elif args.action == "add":
        params = {"account": args.account, "address": args.address, "reason": args.reason or ""}
        row = admin_call(args, "suppression.add", params)
        print(f"{row['base_address']} is on the suppression list of {args.account}")
    elif args.action == "rm":
        admin_call(args, "suppression.rm", {"account": args.account, "address": args.address})
        print(f"{args.address} removed from the suppression list of {args.account}")
    else:
        result = admin_call(args, "suppression.present", {"account": args.account, "address": args.address})
        print("suppressed" if result["present"] else "not suppressed")
        if not result["present"]:
            raise SystemExit(1)


def install(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("suppression", help="an account's suppression list: list, add, rm, present")
    ssub = p.add_subparsers(dest="action", required=True)
    a = ssub.add_parser("list", help="the addresses the account's mail is no longer delivered to")
    a.add_argument("account")
    a.add_argument("--json", action="store_true", help="one JSON document instead of lines")
    a = ssub.add_parser("add", help="stop delivering the account's mail to an address (and its variants)")
    a.add_argument("account")
    a.add_argument("address")
    a.add_argument("--reason", help="free text, shown in the list")
    a = ssub.add_parser("rm", help="deliver to an address again")
    a.add_argument("account")
    a.add_argument("address")
    a = ssub.add_parser("present", help="whether an address is suppressed (exit status 1 when not)")
    a.add_argument("account")
    a.add_argument("address")
    p.set_defaults(func=cmd_suppression)
