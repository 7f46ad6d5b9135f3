"""`mailsrv ldap test ADDRESS`: check the [ldap] configuration against the directory.

Runs in the CLI process (read-only directory work, nothing to write), so it also works when
the daemon is stopped: binds as the service account, finds the entry for ADDRESS, and prints
the attributes it maps and what mailsrv would do with them.
"""

from __future__ import annotations

import argparse
import getpass
from typing import Any


def cmd_ldap_test(args: argparse.Namespace) -> None:
    from mailsrv.auth.interfaces import InvalidCredentials
    from mailsrv.auth.ldap import LDAPDirectory, _Unavailable
    from mailsrv.cli_common import CLIError
    from mailsrv.cli_common import config_path as _config_path
    from mailsrv.config.load import load_static

    config = load_static(_config_path(args))
    if config.ldap is None:
        raise CLIError(f"{config.source}: no [ldap] section")
    directory = LDAPDirectory(config.ldap)
    ldap = config.ldap
    print(f"directory: {', '.join(ldap.uris)} (StartTLS: {ldap.starttls}, TLS required: {ldap.require_tls})")
    mail_user = True
    try:
        user = directory.find(args.address)
        if user is None and ldap.mail_group_dn and ldap.admin_group_dn:
            # An administrator need not be a mail user (docs/ldap.md).
            user = directory.find(args.address, mail_users_only=False)
            mail_user = False
    except _Unavailable as e:
        raise CLIError(f"directory unavailable: {e}") from None
    except InvalidCredentials:
        raise CLIError("the directory refused the service account's bind (bind_dn / bind_password_file)") from None
    if user is not None and not mail_user:
        print(f"entry:        {user.dn} (not in {ldap.mail_group_dn}: no mail, no IMAP/SMTP logins)")
        try:
            admin = directory.is_admin(user)
        except _Unavailable as e:
            raise CLIError(f"directory unavailable: {e}") from None
        print(f"admin:        {'yes' if admin else 'no'} (member of {ldap.admin_group_dn}: {admin})")
        if not admin:
            raise CLIError("neither a mail user nor an administrator")
        print(f"mailsrv would: accept {user.account} as an administrator of the web admin interface only")
        return
    if user is None:
        raise CLIError(
            f"no single entry for {args.address!r} with filter {config.ldap.user_filter}"
            + (f" in group {config.ldap.mail_group_dn}" if config.ldap.mail_group_dn else "")
        )
    print(f"entry:        {user.dn}")
    print(f"account:      {user.account}  (its mail is stored in {config.data_dir}/accounts/{user.account}/)")
    print(f"addresses:    {', '.join(a.display() for a in user.addresses) or '(none: cannot receive mail)'}")
    print(f"display name: {user.display_name}")
    print(f"quota:        {user.quota if user.quota is not None else 'default'}")
    if ldap.admin_group_dn:
        try:
            admin = directory.is_admin(user)
        except _Unavailable as e:
            raise CLIError(f"directory unavailable: {e}") from None
        print(f"admin:        {'yes' if admin else 'no'} (member of {ldap.admin_group_dn}: {admin})")
    print(
        "mailsrv would: deliver mail for these addresses to the account (store created on first use), "
        "accept PLAIN/LOGIN logins checked by binding as the entry; no SCRAM/CRAM-MD5"
    )
    if args.password:
        password = getpass.getpass(f"password of {args.address} (checked by binding as the entry): ")
        try:
            directory.verify(user, password)
        except InvalidCredentials:
            raise CLIError("password refused by the directory") from None
        except _Unavailable as e:
            raise CLIError(f"directory unavailable: {e}") from None
        print("password:     accepted by the directory")


def install(sub: Any) -> None:
    p = sub.add_parser("ldap", help="LDAP directory: test the configuration")
    lsub = p.add_subparsers(dest="action", required=True)
    t = lsub.add_parser("test", help="find ADDRESS in the directory and show what mailsrv would do")
    t.add_argument("address")
    t.add_argument("--password", action="store_true", help="also check a password (asked for)")
    t.set_defaults(func=cmd_ldap_test)
