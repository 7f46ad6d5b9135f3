"""`mailsrv alias add|rm|list|addmember|rmmember|set`: aliases (lists) from the command line.

The admin operations (`alias.*` in `mailsrv.admin.COMMANDS`) run in the daemon over the
control socket, or on the files when no daemon runs, like every other admin command; the
dynamic config validates them (an alias cannot share an address with an account, members
must be addresses of local accounts' domains).
"""

from __future__ import annotations

import argparse
from typing import Any

from mailsrv.admin import JSON, AdminError, command
from mailsrv.config.types import AliasConfig
from mailsrv.server import Server

_OPTIONS = ("post_public", "list_members", "allow_msg_from")


def _describe(alias: AliasConfig) -> dict[str, Any]:
    return {
        "alias": alias.address.display(),
        "members": [m.display() for m in alias.members],
        "post_public": alias.post_public,
        "list_members": alias.list_members,
        "allow_msg_from": alias.allow_msg_from,
    }


def _address(args: dict[str, Any], name: str = "alias") -> str:
    value = args.get(name)
    if not isinstance(value, str) or not value:
        raise AdminError(f"missing argument: {name}")
    return value


def _options(args: dict[str, Any]) -> dict[str, bool]:
    return {k: bool(args[k]) for k in _OPTIONS if isinstance(args.get(k), bool)}


@command("alias.add", in_thread=True)
def alias_add(server: Server, args: dict[str, Any]) -> JSON:
    members = args.get("members") or []
    if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
        raise AdminError("members must be a list of addresses")
    alias = server.dynamic.add_alias(_address(args), members, **_options(args))
    return _describe(alias)


@command("alias.rm", in_thread=True)
def alias_rm(server: Server, args: dict[str, Any]) -> JSON:
    server.dynamic.remove_alias(_address(args))
    return {}


@command("alias.list")
def alias_list(server: Server, args: dict[str, Any]) -> JSON:
    aliases = sorted(server.dynamic.current.aliases.values(), key=lambda a: a.address.display())
    return [_describe(a) for a in aliases]


@command("alias.addmember", in_thread=True)
def alias_addmember(server: Server, args: dict[str, Any]) -> JSON:
    return _describe(server.dynamic.add_alias_member(_address(args), _address(args, "member")))


@command("alias.rmmember", in_thread=True)
def alias_rmmember(server: Server, args: dict[str, Any]) -> JSON:
    return _describe(server.dynamic.remove_alias_member(_address(args), _address(args, "member")))


@command("alias.set", in_thread=True)
def alias_set(server: Server, args: dict[str, Any]) -> JSON:
    return _describe(server.dynamic.set_alias_options(_address(args), **_options(args)))


def _print_alias(row: dict[str, Any]) -> None:
    flags = [name for name in _OPTIONS if row[name]]
    print(f"{row['alias']}\t{', '.join(row['members'])}\t{' '.join(flags) or '-'}")


def cmd_alias(args: argparse.Namespace) -> None:
    from mailsrv.cli import _print, admin_call

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
            _print(rows, True)
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
    a = asub.add_parser("add")
    a.add_argument("alias")
    a.add_argument("members", nargs="*")
    _add_option_flags(a)
    a = asub.add_parser("rm")
    a.add_argument("alias")
    a = asub.add_parser("list")
    a.add_argument("--json", action="store_true")
    for action in ("addmember", "rmmember"):
        a = asub.add_parser(action)
        a.add_argument("alias")
        a.add_argument("member")
    a = asub.add_parser("set")
    a.add_argument("alias")
    _add_option_flags(a)
    p.set_defaults(func=cmd_alias)
