"""`mailsrv alias add|rm|list|addmember|rmmember|set`: aliases (lists) from the command line.

A thin adapter over `mailsrv.ops.aliases` (operations `alias.*`), run in the daemon over the
control socket, or on the files when no daemon runs, like every other admin command.
"""

from __future__ import annotations

import argparse
from typing import Any

from mailsrv.cli_common import admin_call, print_json

_OPTIONS = ("post_public", "list_members", "allow_msg_from")


def _print_alias(row: dict[str, Any]) -> None:
    flags = [name for name in _OPTIONS if row[name]]
    print(f"{row['alias']}\t{', '.join(row['members'])}\t{' '.join(flags) or '-'}")


def cmd_alias(args: argparse.Namespace) -> None:
    options = {k: getattr(args, k) for k in _OPTIONS if getattr(args, k, None) is not None}
    if args.action == "add":
        row = admin_call(args, "alias.add", {"alias": args.alias, "members": args.members, **options})
        print(f"alias {row['alias']} added with {len(row['members'])} member(s)")
    elif args.action == "rm":
        admin_call(args, "alias.rm", {"alias": args.alias})
        print(f"alias {args.alias} removed")
    elif args.action in ("addmember", "rmmember"):
        row = admin_call(args, f"alias.{args.action}", {"alias": args.alias, "member": args.member})
        _print_alias(row)
    elif args.action == "set":
        _print_alias(admin_call(args, "alias.set", {"alias": args.alias, **options}))
    else:
        rows = admin_call(args, "alias.list", {})
        if args.json:
            print_json(rows)
            return
        for row in rows:
            _print_alias(row)


def _add_option_flags(p: argparse.ArgumentParser) -> None:
    for name, what in (
        ("post_public", "anyone may send to the alias (default: members only)"),
        ("list_members", "members may see the member list"),
        ("allow_msg_from", "members may submit with the alias as From:"),
    ):
        flag = name.replace("_", "-")
        p.add_argument(f"--{flag}", dest=name, action="store_const", const=True, help=what)
        p.add_argument(f"--no-{flag}", dest=name, action="store_const", const=False)


def install(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("alias", help="aliases (lists): add, rm, list, addmember, rmmember, set")
    asub = p.add_subparsers(dest="action", required=True)
    a = asub.add_parser("add", help="create an alias (a list) with its members")
    a.add_argument("alias", help="the alias address, in a configured domain")
    a.add_argument("members", nargs="*", help="member addresses")
    _add_option_flags(a)
    a = asub.add_parser("rm", help="remove an alias")
    a.add_argument("alias")
    a = asub.add_parser("list", help="aliases with their members and options")
    a.add_argument("--json", action="store_true", help="one JSON document instead of lines")
    for action in ("addmember", "rmmember"):
        a = asub.add_parser(
            action, help=f"{'add a member to' if action == 'addmember' else 'remove a member from'} an alias"
        )
        a.add_argument("alias")
        a.add_argument("member")
    a = asub.add_parser("set", help="change an alias's options")
    a.add_argument("alias")
    _add_option_flags(a)
    p.set_defaults(func=cmd_alias)
