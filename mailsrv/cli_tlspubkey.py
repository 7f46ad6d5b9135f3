"""`mailsrv config tlspubkey add|list|get|rm|gen`: TLS client-certificate keys of accounts.

add/list/get/rm are a thin adapter over `mailsrv.ops.tlspubkeys` (operations `tlspubkey.*`),
run by the daemon over the control socket (or on the files when it is stopped).
`gen` runs locally: it writes a new ed25519 private key, a minimal self-signed certificate
and a PKCS#12 bundle (the format email clients import), and prints the openssl commands that
do the same by hand. Fingerprints are shown in one format everywhere: base64url SHA-256 of the
SubjectPublicKeyInfo (`mailsrv.tlsutil.fingerprint_text`).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mailsrv.cli_common import CLIError, admin_call


def generate(name: str, directory: Path) -> tuple[Path, Path, Path]:
    """name.key (ed25519, PKCS#8 PEM), name.crt (self-signed, CN=name) and name.p12."""
    from mailsrv.ops.tlspubkeys import make_client_certificate

    paths = (directory / f"{name}.key", directory / f"{name}.crt", directory / f"{name}.p12")
    for p in paths:
        if p.exists():
            raise CLIError(f"{p} exists already; not overwriting it")
    made = make_client_certificate(name)
    paths[0].touch(mode=0o600)
    paths[0].write_bytes(made.key_pem)
    paths[1].write_bytes(made.cert_pem)
    paths[2].touch(mode=0o600)
    paths[2].write_bytes(made.pkcs12)
    return paths


def cmd_tlspubkey(args: argparse.Namespace) -> None:
    if args.action == "gen":
        key, crt, p12 = generate(args.name, Path(args.dir))
        print(f"wrote {key} (private key), {crt} (certificate) and {p12} (PKCS#12 for email clients, no password)")
        print("Register it:  mailsrv config tlspubkey add ACCOUNT", crt)
        print("The same by hand with openssl:")
        print(f"  openssl genpkey -algorithm ed25519 -out {key}")
        print(f"  openssl req -new -x509 -key {key} -subj /CN={args.name} -days 3650 -out {crt}")
        print(f"  openssl pkcs12 -export -inkey {key} -in {crt} -out {p12} -passout pass:")
        return
    if args.action == "add":
        cert_pem = Path(args.cert).read_text(errors="replace")
        result = admin_call(
            args,
            "tlspubkey.add",
            {
                "account": args.account,
                "cert_pem": cert_pem,
                "name": args.name or Path(args.cert).stem,
                "login_address": args.login_address,
                "no_imap_preauth": args.no_imap_preauth,
            },
        )
        print(f"{result['fingerprint']}  added for {result['account']} ({result['name']}, {result['key_type']})")
    elif args.action == "list":
        for k in admin_call(args, "tlspubkey.list", {"account": args.account}):
            flags = " no-imap-preauth" if k["no_imap_preauth"] else ""
            login = f" as {k['login_address']}" if k["login_address"] else ""
            print(f"{k['fingerprint']}  {k['account']}  {k['name']}  {k['key_type']}{login}{flags}")
    elif args.action == "get":
        k = admin_call(args, "tlspubkey.get", {"fingerprint": args.fingerprint})
        for field in ("fingerprint", "account", "name", "key_type", "login_address", "no_imap_preauth"):
            print(f"{field}: {k[field]}")
        print(k["cert_pem"], end="")
    elif args.action == "rm":
        admin_call(args, "tlspubkey.rm", {"fingerprint": args.fingerprint})
        print(f"{args.fingerprint} removed")


def protect_fingerprint(argv: Sequence[str]) -> list[str]:
    """`config tlspubkey get|rm -xyz...`: a base64url fingerprint may begin with "-" (one in
    64), which argparse would take for an option. Such an argument gets a "--" before it."""
    out = list(argv)
    for i in range(len(out) - 3):
        if out[i : i + 2] == ["config", "tlspubkey"] and out[i + 2] in ("get", "rm"):
            value = out[i + 3]
            if value.startswith("-") and value not in ("-h", "--help", "--"):
                out.insert(i + 3, "--")
            break
    return out


def install(sub: Any) -> None:
    p = sub.add_parser("config", help="configuration: tlspubkey")
    csub = p.add_subparsers(dest="section", required=True)
    t = csub.add_parser("tlspubkey", help="TLS client-certificate keys of accounts")
    tsub = t.add_subparsers(dest="action", required=True)
    a = tsub.add_parser("add", help="register the public key of CERT.pem for ACCOUNT")
    a.add_argument("account")
    a.add_argument("cert")
    a.add_argument("--name", help="the device (default: the file name)")
    a.add_argument("--login-address", help="address logged in as (default: the account's primary)")
    a.add_argument("--no-imap-preauth", action="store_true", help="greet with OK, the client logs in with EXTERNAL")
    lst = tsub.add_parser("list", help="registered keys (of one account, or all)")
    lst.add_argument("account", nargs="?")
    g = tsub.add_parser("get", help="one key by its fingerprint")
    g.add_argument("fingerprint")
    r = tsub.add_parser("rm", help="unregister a key: its certificate no longer logs in")
    r.add_argument("fingerprint")
    gen = tsub.add_parser("gen", help="write a new ed25519 key, certificate and .p12")
    gen.add_argument("name")
    gen.add_argument("--dir", default=".")
    t.set_defaults(func=cmd_tlspubkey)
