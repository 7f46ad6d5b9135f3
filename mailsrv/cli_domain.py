"""`mailsrv domain set|show`: a domain's settings from the command line (the catchall
separator, the DMARC and TLS reporting addresses, the MTA-STS mode and max_age).

A thin adapter over `mailsrv.ops.domains` (operations `domain.set`, `domain.show`), run in the
daemon over the control socket, or on the files when no daemon runs.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from mailsrv.cli_common import CLIError, admin_call, print_json
from mailsrv.config.load import format_duration, parse_duration


def _max_age(text: str) -> int:
    seconds = parse_duration(text)
    if seconds is None:
        raise argparse.ArgumentTypeError(f"expected a duration such as 1d, 12h or seconds, got {text!r}")
    return seconds


def print_domain(row: dict[str, Any]) -> None:
    policy = row.get("mta_sts") or {}
    own_mode = row["mta_sts_mode"] or "default"
    own_age = format_duration(row["mta_sts_max_age"]) if row["mta_sts_max_age"] else "default"
    print(f"domain:             {row['domain']}" + (f" ({row['unicode']})" if row["unicode"] != row["domain"] else ""))
    print(f"catchall separator: {row['separator'] or 'none'}")
    print(f"DMARC reports to:   {row['dmarc_reports'] or 'not set'}")
    print(f"TLS reports to:     {row['tlsrpt_reports'] or 'not set'}")
    print(f"MTA-STS mode:       {policy.get('mode')} ({own_mode}), max_age {policy.get('max_age')} ({own_age})")
    if policy.get("mode") != "off":
        print(f'MTA-STS record:     _mta-sts.{row["domain"]}.  TXT "v=STSv1; id={policy.get("id")}"')


def _when(seconds: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(seconds)) if seconds else "?"


def print_reports(found: dict[str, Any]) -> None:
    print(f"DMARC: {found['dmarc_passed']} messages passed, {found['dmarc_failed']} failed")
    for r in found["dmarc"]:
        report = r["report"]
        print(
            f"  {_when(report['begin'])}..{_when(report['end'])}  {report['org']}  {report['report_id']}:"
            f" {report['passed']} passed, {report['failed']} failed"
        )
        for source in report["sources"]:
            if "pass" not in (source["dkim"], source["spf"]):
                print(f"    failing: {source['ip']} x{source['count']} ({source['disposition']})")
    print(f"TLS: {found['tls_successful']} sessions succeeded, {found['tls_failed']} failed")
    for r in found["tlsrpt"]:
        report = r["report"]
        for policy in report["policies"]:
            kinds = ", ".join(f"{k} x{n}" for k, n in policy["failures"].items())
            print(
                f"  {_when(report['begin'])}..{_when(report['end'])}  {report['org']}  {policy['policy_type']}:"
                f" {policy['successful']} succeeded, {policy['failed']} failed" + (f" ({kinds})" if kinds else "")
            )


def cmd_domain_settings(args: argparse.Namespace) -> None:
    if args.action == "reports":
        found = admin_call(args, "domain.reports", {"domain": args.domain, "limit": args.limit})
        if args.json:
            print_json(found)
        else:
            print_reports(found)
        return
    if args.action == "show":
        row = admin_call(args, "domain.show", {"domain": args.domain})
    else:
        changes = {
            k: getattr(args, k)
            for k in ("separator", "dmarc_reports", "tlsrpt_reports", "mta_sts_mode", "mta_sts_max_age")
            if getattr(args, k) is not None
        }
        if not changes:
            raise CLIError("nothing to change: give at least one option (see mailsrv domain set --help)")
        row = admin_call(args, "domain.set", {"domain": args.domain, **changes})
    if args.json:
        print_json(row)
    else:
        print_domain(row)


def add_parsers(dsub: Any) -> None:
    d = dsub.add_parser("reports", help="DMARC and TLS reports received about a domain (summaries)")
    d.add_argument("domain")
    d.add_argument("--limit", type=int, default=30, help="reports of each kind, the latest first (1-100)")
    d.add_argument("--json", action="store_true", help="one JSON document instead of lines")
    d = dsub.add_parser("show", help="a domain's settings and its MTA-STS policy")
    d.add_argument("domain")
    d.add_argument("--json", action="store_true", help="one JSON document instead of lines")
    d = dsub.add_parser("set", help="change a domain's settings (only the options given)")
    d.add_argument("domain")
    d.add_argument("--separator", help='localpart catchall separator ("+": user+tag@ reaches user@); "": none')
    d.add_argument(
        "--dmarc-reports",
        help="address for DMARC aggregate reports (rua=): an account's address other than its primary one, or an"
        ' external mailbox; "": none',
    )
    d.add_argument("--tlsrpt-reports", help='address for SMTP TLS reports (RFC 8460 rua=); "": none')
    d.add_argument(
        "--mta-sts-mode",
        choices=("none", "testing", "enforce", "off", ""),
        help='MTA-STS policy mode for the domain; "": the server\'s [smtp] mta_sts_mode',
    )
    d.add_argument(
        "--mta-sts-max-age", type=_max_age, help="policy max_age (1d, 12h, seconds); 0: the server's default"
    )
    d.add_argument("--json", action="store_true", help="one JSON document instead of lines")
