# mypy: disable-error-code="no-untyped-call"
# (twistd.run and Failure are unannotated Twisted APIs.)
"""The `mailsrv` command.

Administrative commands go to the running daemon over its control socket (the daemon is the
only writer); when no daemon runs they open the files themselves and run the same
operation (`mailsrv.cli_common.admin_call`, the operations of `mailsrv.ops`). Every error is
one line on stderr and exit code 1 (2 for usage errors, from argparse). See docs/cli.md.
"""

from __future__ import annotations

import argparse
import getpass
import secrets
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from mailsrv import (
    cli_alias,
    cli_apitoken,
    cli_domain,
    cli_junk,
    cli_ldap,
    cli_queue,
    cli_rules,
    cli_suppression,
    cli_tlspubkey,
    cli_webhook,
)
from mailsrv.cli_common import DEFAULT_CONFIG, CLIError, admin_call, become_owner
from mailsrv.cli_common import print_json as _print
from mailsrv.config.sizes import format_size, parse_size
from mailsrv.config.types import ConfigError
from mailsrv.filemodes import set_private_umask
from mailsrv.quickstart import QuickstartError

# Subcommands that live in their own modules (aliases, rules, ldap, tlspubkey, queue).
SubcommandInstaller = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]
EXTENSIONS: list[SubcommandInstaller] = [
    cli_alias.install,
    cli_rules.install,
    cli_ldap.install,
    cli_tlspubkey.install,
    cli_queue.install,
    cli_suppression.install,
    cli_webhook.install,
    cli_junk.install,
    cli_apitoken.install,
]


def _read_password(args: argparse.Namespace) -> str:
    if getattr(args, "password", None):
        return str(args.password)
    if not sys.stdin.isatty():
        line = sys.stdin.readline().rstrip("\n")
        if not line:
            raise CLIError("no password given on standard input")
        return line
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        raise CLIError("passwords differ")
    return first


def cmd_account(args: argparse.Namespace) -> None:
    if args.action == "add":
        result = admin_call(
            args,
            "account.add",
            {"account": args.account, "address": args.address, "password": _read_password(args)},
        )
        print(f"account {result['account']} added with address {result['address']}")
    elif args.action == "rm":
        admin_call(args, "account.rm", {"account": args.account})
        print(f"account {args.account} removed (its mail stays in the data directory)")
    elif args.action == "setpassword":
        admin_call(args, "account.setpassword", {"account": args.account, "password": _read_password(args)})
        print(f"password of {args.account} changed")
    elif args.action in ("disable", "enable"):
        admin_call(args, "account.disable", {"account": args.account, "disabled": args.action == "disable"})
        if args.action == "disable":
            print(f"account {args.account} disabled (no logins, its web sessions ended; mail is still delivered)")
        else:
            print(f"account {args.account} enabled")
    elif args.action == "setquota":
        result = admin_call(args, "account.setquota", {"account": args.account, "quota": args.quota})
        quota = result["quota"]
        print(f"quota of {args.account}: {f'{format_size(quota)} ({quota} octets)' if quota else 'no limit'}")
    else:
        rows = admin_call(args, "account.list", {})
        if args.json:
            _print(rows, True)
        for row in [] if args.json else rows:
            quota = format_size(row["quota"]) if row["quota"] else "no limit"
            print(f"{row['account']}\t{', '.join(row['addresses'])}\tquota {quota}")


def cmd_domain(args: argparse.Namespace) -> None:
    if args.action in ("set", "show", "reports"):
        cli_domain.cmd_domain_settings(args)
    elif args.action == "add":
        from mailsrv.quickstart import txt_strings

        result = admin_call(args, "domain.add", {"domain": args.domain})
        print(f"domain {result['domain']} added; publish its DKIM keys (mail is signed with both):")
        for record in result.get("dkim", []):
            print(f"  {record['name']}.  TXT {txt_strings(record['value'])}")
    elif args.action == "rm":
        admin_call(args, "domain.rm", {"domain": args.domain})
        print(f"domain {args.domain} removed")
    elif args.action == "check":
        report = admin_call(args, "domain.check", {"domain": args.domain})
        if args.json:
            _print(report, True)
            return
        for item in report["items"]:
            print(f"{item['status'].upper():8} {item['name']}: {item['message']}")
            for line in item["fix"]:
                print(f"         publish: {line}")
    else:
        rows = admin_call(args, "domain.list", {})
        if args.json:
            _print(rows, True)
        for row in [] if args.json else rows:
            extra = f" ({row['unicode']})" if row["unicode"] != row["domain"] else ""
            print(f"{row['domain']}{extra}")


def cmd_ratelimit(args: argparse.Namespace) -> None:
    result = admin_call(args, "ratelimit.reset", {"ip": args.ip, "account": args.account})
    what = " and ".join(x for x in (args.ip and f"IP {args.ip}", args.account and f"account {args.account}") if x)
    print(f"failed-login counters of {what or 'every IP and account'} reset ({result['dropped']} dropped)")


def cmd_localserve(args: argparse.Namespace) -> None:
    from twisted.scripts.twistd import run

    argv = ["twistd", "--nodaemon", "--pidfile=", "mailsrv", "--localserve", f"--port-offset={args.port_offset}"]
    if args.dir:
        argv.append(f"--dir={args.dir}")
    argv.append(f"--logformat={args.logformat}")
    sys.argv = argv
    run()


def cmd_quickstart(args: argparse.Namespace) -> None:
    from mailsrv.quickstart import quickstart

    # As root into the daemon's user's directories: as that user (docs/operations.md).
    data_dir = Path(args.data_dir) if args.data_dir else None
    become_owner(Path(args.dir), *([data_dir] if data_dir is not None else []))
    password = args.password or secrets.token_urlsafe(12)
    print(
        quickstart(
            Path(args.dir), args.domain, args.admin_address, password, args.cert, args.key, args.hostname, data_dir
        )
    )


def cmd_setadminpassword(args: argparse.Namespace) -> None:
    admin_call(args, "admin.setpassword", {"password": _read_password(args)})
    print("admin password set (web admin interface, login name: admin)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mailsrv", description="mailsrv mail server administration")
    parser.add_argument("--config", "-c", help=f"path of mailsrv.toml (default $MAILSRV_CONFIG or {DEFAULT_CONFIG})")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("localserve", help="run a local development server on loopback ports")
    p.add_argument("--dir", help="directory for config and data (default ~/.local/share/mailsrv-localserve)")
    p.add_argument("--port-offset", type=int, default=0, help="add N to every port")
    p.add_argument("--logformat", choices=["text", "json"], default="text", help="log lines as text or JSON")
    p.set_defaults(func=cmd_localserve)

    p = sub.add_parser("quickstart", help="write a configuration for a new mail domain")
    p.add_argument("domain")
    p.add_argument("admin_address")
    p.add_argument("--dir", default=".", help="where to write mailsrv.toml and tls/ (default: .)")
    p.add_argument("--data-dir", help="where mail and accounts live (default: DIR/data; production: /var/lib/mailsrv)")
    p.add_argument("--hostname", help="the server's host name (default mail.DOMAIN)")
    p.add_argument("--cert", help="TLS certificate chain (PEM); default: generate a self-signed one")
    p.add_argument("--key", help="TLS private key (PEM) for --cert")
    p.add_argument("--password", help="admin password (default: generated and printed)")
    p.set_defaults(func=cmd_quickstart)

    p = sub.add_parser(
        "setadminpassword", help="set the web admin interface's password (asked twice, or one line on stdin)"
    )
    p.set_defaults(func=cmd_setadminpassword)

    p = sub.add_parser("account", help="accounts: add, rm, list, setpassword, disable, enable, setquota")
    asub = p.add_subparsers(dest="action", required=True)
    a = asub.add_parser("add", help="create an account with its first address and a password")
    a.add_argument("account", help="the account's name (also its login, besides its addresses)")
    a.add_argument("address", help="its first email address, in a configured domain")
    a.add_argument("--password", help="(default: asked, or read from standard input)")
    a = asub.add_parser("rm", help="remove an account (its mail stays in the data directory)")
    a.add_argument("account")
    a = asub.add_parser("list", help="accounts with their addresses and quotas")
    a.add_argument("--json", action="store_true", help="one JSON document instead of lines")
    a = asub.add_parser("setpassword", help="set an account's password")
    a.add_argument("account")
    a.add_argument("--password", help="(default: asked, or read from standard input)")
    a = asub.add_parser("disable", help="no logins for an account (its mail is still delivered)")
    a.add_argument("account")
    a = asub.add_parser("enable", help="allow logins for a disabled account again")
    a.add_argument("account")
    a = asub.add_parser("setquota", help="set the storage limit of an account")
    a.add_argument("account")
    a.add_argument("quota", type=_size, help="octets or a size such as 500M, 1G, 1.5G (1G = 1024M); 0: no limit")
    p.set_defaults(func=cmd_account)

    p = sub.add_parser("domain", help="domains: add, rm, list, check, show, set, reports")
    dsub = p.add_subparsers(dest="action", required=True)
    d = dsub.add_parser("add", help="accept mail for a domain (and create its DKIM keys)")
    d.add_argument("domain", help="the domain name (Unicode or A-label)")
    d = dsub.add_parser("rm", help="stop accepting mail for a domain")
    d.add_argument("domain")
    d = dsub.add_parser("list", help="the configured domains")
    d.add_argument("--json", action="store_true", help="one JSON document instead of lines")
    d = dsub.add_parser("check", help="look up and judge the domain's DNS records (MX, SPF, DKIM, DMARC, ...)")
    d.add_argument("domain")
    d.add_argument("--json", action="store_true", help="one JSON document instead of lines")
    cli_domain.add_parsers(dsub)
    p.set_defaults(func=cmd_domain)

    p = sub.add_parser("ratelimit", help="failed-login limits: reset")
    rsub = p.add_subparsers(dest="action", required=True)
    r = rsub.add_parser("reset", help="forget failed logins (of an IP, an account, both; all without options)")
    r.add_argument("--ip", help="the client's IP address (IPv6: its /64)")
    r.add_argument("--account", help="a login name: address or account name, any spelling")
    p.set_defaults(func=cmd_ratelimit)

    for install in EXTENSIONS:
        install(sub)
    _describe(parser)
    return parser


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _describe(parser: argparse.ArgumentParser) -> None:
    """Every subcommand's `--help` starts with the line its parent lists it with."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                if sub.description is None and helps.get(name):
                    sub.description = helps[name]
                _describe(sub)


def main(argv: Sequence[str] | None = None) -> int:
    # Whatever the CLI creates (quickstart's data directory, keys, a store opened without a
    # daemon) is private to the service user (mailsrv/filemodes.py).
    set_private_umask()
    parser = build_parser()
    argv = cli_tlspubkey.protect_fingerprint(sys.argv[1:] if argv is None else argv)
    split = cli_queue.split_sendmail(argv)
    args = parser.parse_args(argv if split is None else split[0])
    if split is not None:
        args.sendmail_args = split[1]
    try:
        args.func(args)
    except (CLIError, ConfigError, QuickstartError) as e:
        sys.stderr.write(f"mailsrv: {e}\n")
        return 1
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        sys.stderr.write(f"mailsrv: {where}{e.strerror or e}\n")
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    # `python -m mailsrv.cli` runs this file as __main__; extension modules import
    # `mailsrv.cli`, a second copy. Run that copy so there is one CLIError class.
    from mailsrv.cli import main as _main

    sys.exit(_main())
