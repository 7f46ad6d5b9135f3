"""`mailsrv queue list|retired|hold|release|retry|drop|purge|keep|holdrules` and `mailsrv sendmail`.

The admin operations (`queue.*` in `mailsrv.admin.COMMANDS`) run in the daemon over the
control socket, or on the files when no daemon runs; the work is `mailsrv/queue/admin.py`
on the queue database. They stay on the reactor thread: the queue's SQLite connection is
the runner's, used there only.

Invariants:
- Filters (ids, `--sender`, `--recipient`, `--account`, `--held`/`--not-held`) combine with
  AND; no filter matches every message, except for `drop`, which needs a filter or `--all`
  (dropping sends no DSN: an admin decision that should not happen by a typo).
- `purge` only forgets retired messages (history, never mail or an owed DSN): with no
  filter those whose keep period has passed (what the queue service does hourly), with a
  filter every matching retired message at once.
- `release` and `retry` wake the queue runner, so the attempt starts now rather than at
  its next scan.
- `keep ACCOUNT [DURATION]` shows or sets the account's `retired_keep` (dynamic config,
  rewritten atomically; in the thread pool like every config change).
- `mailsrv sendmail ...` is `mailsrv.sendmail.main` with the same arguments and exit codes.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

from mailsrv.admin import JSON, AdminError, command
from mailsrv.config.load import format_duration, parse_duration
from mailsrv.queue import admin as qadmin
from mailsrv.queue.store import OutgoingQueue
from mailsrv.server import Server


def _queue(server: Server) -> OutgoingQueue:
    if server.queue is None:
        raise AdminError("this server has no outgoing queue")
    return server.queue


def _filter(args: dict[str, Any]) -> qadmin.QueueFilter:
    ids = args.get("ids") or []
    if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise AdminError("ids must be a list of queue ids (numbers)")
    texts: dict[str, str | None] = {}
    for name in ("sender", "recipient", "account"):
        value = args.get(name)
        if value is not None and not isinstance(value, str):
            raise AdminError(f"{name} must be text")
        texts[name] = value or None
    held = args.get("held")
    if held is not None and not isinstance(held, bool):
        raise AdminError("held must be true or false")
    return qadmin.QueueFilter(tuple(ids), texts["sender"], texts["recipient"], texts["account"], held)


def _describe(m: qadmin.QueuedMessage) -> dict[str, Any]:
    return {
        "id": m.id,
        "from": m.mail_from,
        "account": m.account,
        "size": m.size,
        "created": m.created,
        "held": m.held,
        "retired_until": m.retired_until,
        "recipients": [
            {
                "address": r.address,
                "status": r.status,
                "attempts": r.attempts,
                "next_attempt": r.next_attempt,
                "last_error": r.last_error,
            }
            for r in m.recipients
        ],
    }


def _wake_runner(server: Server, queue: OutgoingQueue) -> None:
    # The runner listens on on_enqueued (mailsrv/queue/service.py); its kick ignores the id.
    for callback in list(queue.on_enqueued):
        callback(0)


@command("queue.list")
def queue_list(server: Server, args: dict[str, Any]) -> JSON:
    return [_describe(m) for m in qadmin.list_queue(_queue(server).db, _filter(args))]


@command("queue.retired")
def queue_retired(server: Server, args: dict[str, Any]) -> JSON:
    return [_describe(m) for m in qadmin.list_retired(_queue(server).db, _filter(args))]


@command("queue.purge")
def queue_purge(server: Server, args: dict[str, Any]) -> JSON:
    queue = _queue(server)
    f = _filter(args)
    selected = None if f == qadmin.QueueFilter() else f
    return {"count": qadmin.purge_retired(queue.db, queue.msg_dir, time.time(), selected)}


@command("queue.history")
def queue_history(server: Server, args: dict[str, Any]) -> JSON:
    message_id = args.get("id")
    if not isinstance(message_id, int):
        raise AdminError("missing argument: id (a queue id)")
    db = _queue(server).db
    found = qadmin.list_queue(db, qadmin.QueueFilter(ids=(message_id,))) or qadmin.list_retired(
        db, qadmin.QueueFilter(ids=(message_id,))
    )
    if not found:
        raise AdminError(f"no queued or retired message {message_id}")
    return {
        "message": _describe(found[0]),
        "attempts": [
            {"recipient": a.recipient, "time": a.time, "host": a.host, "code": a.code, "reply": a.reply}
            for a in qadmin.attempt_history(db, message_id)
        ],
    }


@command("queue.keep", in_thread=True)
def queue_keep(server: Server, args: dict[str, Any]) -> JSON:
    name = args.get("account")
    if not isinstance(name, str) or not name:
        raise AdminError("missing argument: account")
    account = server.dynamic.account_by_name(name)
    if account is None:
        raise AdminError(f"no such account: {name}")
    keep = args.get("keep")
    if keep is not None:
        seconds = parse_duration(keep) if isinstance(keep, str) else None
        if seconds is None:
            raise AdminError(f'keep must be a duration such as "7d", "12h" or "30m", or 0; got {keep!r}')
        account = server.dynamic.set_account_retired_keep(name, seconds)
    return {"account": account.name, "retired_keep": account.retired_keep}


@command("queue.hold")
def queue_hold(server: Server, args: dict[str, Any]) -> JSON:
    return {"count": qadmin.set_hold(_queue(server).db, _filter(args), True)}


@command("queue.release")
def queue_release(server: Server, args: dict[str, Any]) -> JSON:
    queue = _queue(server)
    count = qadmin.set_hold(queue.db, _filter(args), False)
    if count:
        _wake_runner(server, queue)
    return {"count": count}


@command("queue.retry")
def queue_retry(server: Server, args: dict[str, Any]) -> JSON:
    queue = _queue(server)
    count = qadmin.retry(queue.db, _filter(args))
    if count:
        _wake_runner(server, queue)
    return {"count": count}


@command("queue.drop")
def queue_drop(server: Server, args: dict[str, Any]) -> JSON:
    queue = _queue(server)
    f = _filter(args)
    if f == qadmin.QueueFilter() and args.get("all") is not True:
        raise AdminError("drop needs a filter (ids, --sender, --recipient, --account, --held) or --all")
    return {"count": qadmin.drop(queue.db, queue.msg_dir, f)}


def _rule(r: qadmin.HoldRule) -> dict[str, Any]:
    return {
        "id": r.id,
        "sender_domain": r.sender_domain,
        "sender": r.sender,
        "recipient_domain": r.recipient_domain,
        "recipient": r.recipient,
    }


@command("queue.holdrules.add")
def holdrules_add(server: Server, args: dict[str, Any]) -> JSON:
    fields: dict[str, str] = {}
    for name in ("sender_domain", "sender", "recipient_domain", "recipient"):
        value = args.get(name) or ""
        if not isinstance(value, str):
            raise AdminError(f"{name} must be text")
        fields[name] = value
    rule = qadmin.HoldRule(
        0, fields["sender_domain"], fields["sender"], fields["recipient_domain"], fields["recipient"]
    )
    rule_id = qadmin.add_hold_rule(_queue(server).db, rule)
    return _rule(next(r for r in qadmin.hold_rules(_queue(server).db) if r.id == rule_id))


@command("queue.holdrules.rm")
def holdrules_rm(server: Server, args: dict[str, Any]) -> JSON:
    rule_id = args.get("id")
    if not isinstance(rule_id, int) or isinstance(rule_id, bool):
        raise AdminError("missing argument: id (a number)")
    if not qadmin.remove_hold_rule(_queue(server).db, rule_id):
        raise AdminError(f"no such hold rule: {rule_id}")
    return {}


@command("queue.holdrules.list")
def holdrules_list(server: Server, args: dict[str, Any]) -> JSON:
    return [_rule(r) for r in qadmin.hold_rules(_queue(server).db)]


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
        print(f"\t{r['address']}\t{r['status']}\tattempts {r['attempts']}{error}")


def _filter_params(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {"ids": list(args.ids)}
    for name in ("sender", "recipient", "account", "held"):
        if getattr(args, name) is not None:
            params[name] = getattr(args, name)
    return params


def cmd_queue(args: argparse.Namespace) -> None:
    from mailsrv.cli_common import admin_call
    from mailsrv.cli_common import print_json as _print

    if args.action in ("list", "retired"):
        rows = admin_call(args, f"queue.{args.action}", _filter_params(args))
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
            print(f"{_when(a['time'])} UTC\t{a['recipient']}\t{a['host'] or '-'}\t{a['reply']}")
    elif args.action == "keep":
        result = admin_call(args, "queue.keep", {"account": args.account, "keep": args.duration})
        seconds = result["retired_keep"]
        kept = f"kept {format_duration(seconds)}" if seconds else "not kept (removed when finished)"
        print(f"finished messages of {result['account']}: {kept}")
    elif args.action in ("hold", "release", "retry", "drop", "purge"):
        params = _filter_params(args)
        if args.action == "drop":
            params["all"] = args.all
        result = admin_call(args, f"queue.{args.action}", params)
        what = {"retry": "recipient(s)", "purge": "retired message(s)"}.get(args.action, "message(s)")
        done = {"hold": "held", "release": "released", "retry": "due now", "drop": "dropped", "purge": "forgotten"}[
            args.action
        ]
        print(f"{result['count']} {what} {done}")
    elif args.rule_action == "add":
        params = {k: getattr(args, k) or "" for k in ("sender_domain", "sender", "recipient_domain", "recipient")}
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
                f"{k.replace('_', '-')}={r[k]}" for k in ("sender_domain", "sender", "recipient_domain", "recipient")
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


def install(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "queue", help="outgoing queue: list, retired, history, hold, release, retry, drop, purge, keep, holdrules"
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
        ("drop", "remove queued messages without a DSN"),
        ("purge", "forget retired messages: past their keep period, or every one matching a filter"),
    ):
        a = qsub.add_parser(action, help=what)
        _add_filters(a)
        if action == "drop":
            a.add_argument("--all", action="store_true", help="drop every queued message (no filter)")
    a = qsub.add_parser("history", help="one message (queued or retired) with every delivery attempt")
    a.add_argument("id", type=int)
    a.add_argument("--json", action="store_true")
    a = qsub.add_parser("keep", help="show or set how long an account's finished messages stay retired")
    a.add_argument("account")
    a.add_argument("duration", nargs="?", help='e.g. "7d", "12h", "1d12h", "30m"; 0: not kept')
    a = qsub.add_parser("holdrules", help="hold rules, applied to messages when they are queued")
    rsub = a.add_subparsers(dest="rule_action", required=True)
    r = rsub.add_parser("add", help="an empty rule holds every message")
    for name in ("sender-domain", "sender", "recipient-domain", "recipient"):
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
