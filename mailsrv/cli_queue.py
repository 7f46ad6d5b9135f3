"""`mailsrv queue list|retired|history|hold|release|retry|next|requiretls|transport(s)|drop|purge|keep|holdrules`
and `mailsrv sendmail`: argument parsing and printing only.

The operations are `mailsrv/ops/queue.py` (`queue.*` in `mailsrv.ops.catalog`), run in the
daemon over the control socket, or on the files when no daemon runs. `list` and `retired` read
every page of the listing and print them in order.

- `keep ACCOUNT [DURATION]` shows or sets the account's `retired_keep`.
- `mailsrv sendmail ...` is `mailsrv.sendmail.main` with the same arguments and exit codes.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

from mailsrv.config.load import format_duration, parse_duration

# -- command line --------------------------------------------------------------------------


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(timestamp))


def _print_message(row: dict[str, Any]) -> None:
    held = " HELD" if row["held"] else ""
    until = row.get("retired_until")
    kept = f"\tkept until {_when(until)} UTC" if until is not None else ""
    print(f"{row['id']}\t{row['from'] or '<>'}\t{row['size']} octets\t{_when(row['created'])} UTC{held}{kept}")
    for r in row["recipients"]:
        error = f"\t{r['last_error']}" if r["last_error"] else ""
        fixed = " (set by an administrator)" if r.get("transport_fixed") else ""
        via = f"\tvia {r['transport']}{fixed}" if r.get("transport") else ""
        print(f"\t{r['address']}\t{r['status']}\tattempts {r['attempts']}{via}{error}")


def _filter_params(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {"ids": list(args.ids)}
    for name in ("sender", "recipient", "account", "held", "transport"):
        if getattr(args, name) is not None:
            params[name] = getattr(args, name)
    return params


def cmd_queue(args: argparse.Namespace) -> None:
    from mailsrv.cli_common import CLIError, admin_call
    from mailsrv.cli_common import print_json as _print

    if args.action in ("list", "retired"):
        rows: list[Any] = []
        params = {**_filter_params(args), "limit": 1000}
        while True:
            page = admin_call(args, f"queue.{args.action}", params)
            rows += page["messages"]
            if page["next"] is None:
                break
            params["after"] = page["next"]
        if args.json:
            _print(rows, True)
            return
        for row in rows:
            _print_message(row)
    elif args.action == "history":
        result = admin_call(args, "queue.history", {"id": args.id})
        if args.json:
            _print(result, True)
            return
        _print_message(result["message"])
        for a in result["attempts"]:
            via = f"\tvia {a['transport']}" if a.get("transport") else ""
            print(f"{_when(a['time'])} UTC\t{a['recipient']}\t{a['host'] or '-'}\t{a['reply']}{via}")
    elif args.action == "transports":
        found = admin_call(args, "queue.transports", {})
        if args.json:
            _print(found, True)
            return
        for t in found:
            where = (
                f"{t['host']}:{t['port']}"
                if t["host"]
                else "MX hosts" + (f" from {t['source_ip']}" if t["source_ip"] else "")
            )
            notes = [n for n, on in (("login", t["login"]), ("verified TLS", t["tls_verify"])) if on]
            print(f"{t['name']}\t{t['kind']}\t{where}" + (f"\t{', '.join(notes)}" if notes else ""))
    elif args.action == "keep":
        result = admin_call(args, "queue.keep", {"account": args.account, "keep": args.duration})
        seconds = result["retired_keep"]
        kept = f"kept {format_duration(seconds)}" if seconds else "not kept (removed when finished)"
        print(f"finished messages of {result['account']}: {kept}")
    elif args.action in ("next", "requiretls", "transport"):
        params = _filter_params(args)
        if args.action == "transport":
            params["to"] = args.name
            what = "recipient(s) changed"
        elif args.action == "next":
            seconds = parse_duration(args.delay)
            if seconds is None:
                raise CLIError(f'not a duration: {args.delay!r} (e.g. "0", "30m", "2h")')
            params["when"] = time.time() + seconds
            what = "recipient(s) rescheduled"
        else:
            params["required"] = args.setting == "yes"
            what = "message(s) changed"
        result = admin_call(args, f"queue.{args.action}", params)
        print(f"{result['count']} {what}")
    elif args.action in ("hold", "release", "retry", "drop", "purge"):
        params = _filter_params(args)
        if args.action == "drop":
            params["all"] = args.all
            params["dsn"] = args.dsn
            params["reason"] = args.reason or ""
        result = admin_call(args, f"queue.{args.action}", params)
        what = {"retry": "recipient(s)", "purge": "retired message(s)"}.get(args.action, "message(s)")
        done = {"hold": "held", "release": "released", "retry": "due now", "drop": "dropped", "purge": "forgotten"}[
            args.action
        ]
        print(f"{result['count']} {what} {done}")
    elif args.rule_action == "add":
        keys = ("sender_domain", "sender", "recipient_domain", "recipient", "account")
        params = {k: getattr(args, k) or "" for k in keys}
        rule = admin_call(args, "queue.holdrules.add", params)
        print(f"hold rule {rule['id']} added")
    elif args.rule_action == "rm":
        admin_call(args, "queue.holdrules.rm", {"id": args.id})
        print(f"hold rule {args.id} removed")
    else:
        rules = admin_call(args, "queue.holdrules.list", {})
        if args.json:
            _print(rules, True)
            return
        for r in rules:
            parts = [
                f"{k.replace('_', '-')}={r[k]}"
                for k in ("sender_domain", "sender", "recipient_domain", "recipient", "account")
            ]
            print(f"{r['id']}\t{' '.join(p for p in parts if not p.endswith('=')) or '(every message)'}")


def cmd_sendmail(args: argparse.Namespace) -> None:
    from mailsrv import sendmail

    code = sendmail.main(args.sendmail_args)
    if code:
        raise SystemExit(code)  # sendmail's exit codes (sysexits.h), not the CLI's 1


def split_sendmail(argv: Sequence[str]) -> tuple[list[str], list[str]] | None:
    """`[--config X] sendmail ARGS...` -> (argv up to "sendmail", ARGS); None for other commands.
    sendmail's own options (-t, -f, -oi, ...) are not the CLI's: argparse must not see them."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("--config", "-c"):
            i += 2
        elif arg.startswith("--config=") or (arg.startswith("-c") and len(arg) > 2):
            i += 1
        else:
            break
    if i < len(argv) and argv[i] == "sendmail":
        return list(argv[: i + 1]), list(argv[i + 1 :])
    return None


def _add_filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("ids", nargs="*", type=int, help="queue ids (default: every message)")
    p.add_argument("--sender", help="envelope sender address, or @domain")
    p.add_argument("--recipient", help="a recipient address, or @domain")
    p.add_argument("--account", help="the submitting account")
    p.add_argument("--held", dest="held", action="store_const", const=True, help="only held messages")
    p.add_argument("--not-held", dest="held", action="store_const", const=False, help="only messages not held")
    p.add_argument("--transport", help="a recipient's transport (its next attempt's, or the last used)")


def install(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "queue",
        help="outgoing queue: list, retired, history, hold, release, retry, next, requiretls, transport, drop,"
        " purge, keep, holdrules",
    )
    qsub = p.add_subparsers(dest="action", required=True)
    for action, what in (
        ("list", "messages still to deliver"),
        ("retired", "finished messages kept for their account's retired_keep, with their outcome"),
    ):
        a = qsub.add_parser(action, help=what)
        _add_filters(a)
        a.add_argument("--json", action="store_true")
    for action, what in (
        ("hold", "keep matching messages queued until released"),
        ("release", "deliver held messages again"),
        ("retry", "make queued recipients due now"),
        ("drop", "remove queued messages (silently; --dsn: the senders get a failure DSN)"),
        ("purge", "forget retired messages: past their keep period, or every one matching a filter"),
    ):
        a = qsub.add_parser(action, help=what)
        _add_filters(a)
        if action == "drop":
            a.add_argument("--all", action="store_true", help="drop every queued message (no filter)")
            a.add_argument("--dsn", action="store_true", help="fail the recipients: the sender gets a DSN")
            a.add_argument("--reason", help="the reason the DSN and the history give")
    a = qsub.add_parser("next", help="set the next delivery attempt of matching messages")
    a.add_argument("delay", help='from now: "0", "30m", "2h", "1d"')
    _add_filters(a)
    a = qsub.add_parser("requiretls", help="require verified TLS on every hop (RFC 8689 REQUIRETLS) or not")
    a.add_argument("setting", choices=("yes", "no"))
    _add_filters(a)
    a = qsub.add_parser("transport", help="deliver queued recipients through another transport (docs/queue.md)")
    a.add_argument("name", help='"direct", a [transports.NAME] of mailsrv.toml, or "routes": the routes choose again')
    _add_filters(a)
    a = qsub.add_parser("transports", help="the configured transports ([transports] in mailsrv.toml)")
    a.add_argument("--json", action="store_true")
    a = qsub.add_parser("history", help="one message (queued or retired) with every delivery attempt")
    a.add_argument("id", type=int)
    a.add_argument("--json", action="store_true")
    a = qsub.add_parser("keep", help="show or set how long an account's finished messages stay retired")
    a.add_argument("account")
    a.add_argument("duration", nargs="?", help='e.g. "7d", "12h", "1d12h", "30m"; 0: not kept')
    a = qsub.add_parser("holdrules", help="hold rules, applied to messages when they are queued")
    rsub = a.add_subparsers(dest="rule_action", required=True)
    r = rsub.add_parser("add", help="an empty rule holds every message")
    for name in ("sender-domain", "sender", "recipient-domain", "recipient", "account"):
        r.add_argument(f"--{name}", dest=name.replace("-", "_"))
    r = rsub.add_parser("rm", help="remove a hold rule by its id")
    r.add_argument("id", type=int)
    r = rsub.add_parser("list", help="the hold rules with their ids")
    r.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_queue)

    p = sub.add_parser(
        "sendmail",
        help="submit a message from standard input (sendmail compatible; see docs/queue.md)",
        add_help=False,
    )
    # The arguments after "sendmail" are split off before parsing (split_sendmail).
    p.set_defaults(func=cmd_sendmail, sendmail_args=[])
