"""`mailsrv webhook ...`: an account's webhooks and the webhook queue from the command line.

A thin adapter over `mailsrv.ops.webhooks` (operations `webhooks.*`), run in the daemon over
the control socket, or on the files when no daemon runs. `list` and `retired` read every page.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from mailsrv.cli_common import admin_call, print_json
from mailsrv.config.load import format_duration


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) + " UTC"


def _print_settings(s: dict[str, Any]) -> None:
    events = ",".join(s["outgoing_events"]) or "all events"
    auth_out = " with Authorization" if s["outgoing_authorization"] else ""
    auth_in = " with Authorization" if s["incoming_authorization"] else ""
    print(f"outgoing: {s['outgoing_url'] or '(none)'} ({events}){auth_out}")
    print(f"incoming: {s['incoming_url'] or '(none)'}{auth_in}")
    print(f"signing secret: {'set' if s['has_secret'] else 'none (webhooks unsigned; see: webhook rotate)'}")
    keep = s["retired_keep"]
    print(f"finished webhooks: {'kept ' + format_duration(keep) if keep else 'not kept'}")


def _print_hook(h: dict[str, Any]) -> None:
    about = f"queue {h['queue_id']} {h['recipient']}" if h["queue_id"] else h["recipient"] or "-"
    state = h["outcome"] or f"next {_when(h['next_attempt'])}"
    print(
        f"{h['id']}\t{h['account']}\t{h['event']}\t{about}\t{_when(h['created'])}\tattempts {h['attempts']}"
        f"\t{state}\t{h['last_result'] or '-'}"
    )


def _selection(args: argparse.Namespace) -> dict[str, Any]:
    return {"account": args.account, "ids": list(args.ids), "all": args.all}


def cmd_webhook(args: argparse.Namespace) -> None:
    action = args.action
    if action == "outgoing":
        if args.url is None:
            _print_settings(admin_call(args, "webhooks.settings", {"account": args.account}))
            return
        events = [e for e in (args.events or "").split(",") if e]
        params = {"account": args.account, "url": args.url, "authorization": args.authorization or "", "events": events}
        _print_settings(admin_call(args, "webhooks.outgoing", params))
    elif action == "incoming":
        if args.url is None:
            _print_settings(admin_call(args, "webhooks.settings", {"account": args.account}))
            return
        params = {"account": args.account, "url": args.url, "authorization": args.authorization or ""}
        _print_settings(admin_call(args, "webhooks.incoming", params))
    elif action == "rotate":
        print(admin_call(args, "webhooks.rotate", {"account": args.account})["secret"])
    elif action == "settings":
        result = admin_call(args, "webhooks.settings", {"account": args.account})
        if args.json:
            print_json(result)
        else:
            _print_settings(result)
    elif action in ("list", "retired"):
        hooks: list[Any] = []
        paging: dict[str, Any] = {"account": args.account, "limit": 1000}
        while True:
            page = admin_call(args, f"webhooks.{action}", paging)
            hooks += page["hooks"]
            if page["next"] is None:
                break
            paging["after"] = page["next"]
        if args.json:
            print_json(hooks)
            return
        for h in hooks:
            _print_hook(h)
    elif action in ("retry", "drop"):
        count = admin_call(args, f"webhooks.{action}", _selection(args))["count"]
        print(f"{count} webhook(s) {'due now' if action == 'retry' else 'dropped'}")
    elif action == "keep":
        s = admin_call(args, "webhooks.keep", {"account": args.account, "keep": args.duration})
        keep = s["retired_keep"]
        print(f"finished webhooks of {args.account}: {'kept ' + format_duration(keep) if keep else 'not kept'}")
    else:
        addresses = [] if args.clear else (args.addresses or None)
        result = admin_call(args, "webhooks.fromid", {"account": args.account, "addresses": addresses})
        print(f"fromid login addresses of {result['account']}: {', '.join(result['addresses']) or '(none)'}")
        if result["addresses"] and not result["retired_keep"]:
            print("note: finished messages are not kept (mailsrv queue keep ACCOUNT 14d): DSNs cannot be matched")


def install(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("webhook", help="webhooks: settings of an account, the webhook queue, fromid addresses")
    wsub = p.add_subparsers(dest="action", required=True)
    a = wsub.add_parser("outgoing", help="show or set the account's outgoing webhook (delivery events)")
    a.add_argument("account")
    a.add_argument("url", nargs="?", help='the URL; "" disables')
    a.add_argument("--authorization", help="the Authorization header value, e.g. 'Basic dXNlcjpwYXNz'")
    a.add_argument("--events", help="comma-separated events (default: all)")
    a = wsub.add_parser("incoming", help="show or set the account's incoming webhook (delivered messages)")
    a.add_argument("account")
    a.add_argument("url", nargs="?", help='the URL; "" disables')
    a.add_argument("--authorization")
    a = wsub.add_parser("rotate", help="make a new signing secret and print it (shown only now)")
    a.add_argument("account")
    a = wsub.add_parser("settings", help="the account's webhook settings")
    a.add_argument("account")
    a.add_argument("--json", action="store_true")
    for name, what in (("list", "webhooks still to call"), ("retired", "finished webhooks, newest first")):
        a = wsub.add_parser(name, help=what)
        a.add_argument("--account")
        a.add_argument("--json", action="store_true", help="one JSON document instead of lines")
    for name, what in (("retry", "call queued webhooks now"), ("drop", "stop calling queued webhooks")):
        a = wsub.add_parser(name, help=what)
        a.add_argument("ids", nargs="*", type=int)
        a.add_argument("--account")
        a.add_argument("--all", action="store_true", help="every queued webhook")
    a = wsub.add_parser("keep", help="show or set how long finished webhooks stay in the retired list")
    a.add_argument("account")
    a.add_argument("duration", nargs="?", help='"7d", "12h", "0"')
    a = wsub.add_parser("fromid", help="show or set the login addresses whose submissions use fromid MAIL FROMs")
    a.add_argument("account")
    a.add_argument("addresses", nargs="*")
    a.add_argument("--clear", action="store_true", help="no fromid login addresses")
    p.set_defaults(func=cmd_webhook)
