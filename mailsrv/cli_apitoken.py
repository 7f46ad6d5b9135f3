"""`mailsrv apitoken add|list|remove ACCOUNT [NAME]`: an account's webapi tokens from the
command line (the account page offers the same).

A thin adapter over `mailsrv.ops.apitokens` (operations `apitoken.*`), run in the daemon over
the control socket, or on the files when no daemon runs. `add` prints the token once: only its
hash is kept.
"""

from __future__ import annotations

import argparse
import time

from mailsrv.cli_common import admin_call, print_json


def _when(t: float | None, never: str) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t)) if t is not None else never


def cmd_apitoken(args: argparse.Namespace) -> None:
    if args.action == "add":
        params = {"account": args.account, "name": args.name, "expires_days": args.days}
        made = admin_call(args, "apitoken.add", params)
        print(made["token"])
        expires = _when(made["info"]["expires"], "never")
        print(f"(token {made['info']['name']!r} of {args.account}, expires {expires}; shown only now:", end=" ")
        print("use it as the HTTP Basic password of an address of the account on the webapi)")
    elif args.action == "list":
        rows = admin_call(args, "apitoken.list", {"account": args.account})
        if args.json:
            print_json(rows)
            return
        for r in rows:
            state = "  EXPIRED" if r["expired"] else ""
            print(
                f"{r['name']}\tcreated {_when(r['created'], '-')}\tlast used {_when(r['last_used'], 'never')}"
                f"\texpires {_when(r['expires'], 'never')}{state}"
            )
    else:
        admin_call(args, "apitoken.rm", {"account": args.account, "name": args.name})
        print(f"token {args.name!r} of {args.account} revoked")


def install(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("apitoken", help="an account's webapi tokens: add, list, remove")
    tsub = p.add_subparsers(dest="action", required=True)
    a = tsub.add_parser("add", help="make a token (printed once) for the account's applications")
    a.add_argument("account")
    a.add_argument("name", help="what the token is for (unique within the account)")
    a.add_argument("--days", type=int, default=0, help="expires after this many days (default: never)")
    a = tsub.add_parser("list", help="the account's tokens: name, created, last used, expiry")
    a.add_argument("account")
    a.add_argument("--json", action="store_true", help="one JSON document instead of lines")
    a = tsub.add_parser("remove", help="revoke a token: its next use is refused")
    a.add_argument("account")
    a.add_argument("name")
    p.set_defaults(func=cmd_apitoken)
