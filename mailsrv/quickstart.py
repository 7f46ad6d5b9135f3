"""`mailsrv quickstart`: a first configuration for a new mail domain.

Writes mailsrv.toml (production ports), the data directory with the domain and an admin
account, DKIM keys (ed25519 and RSA, RFC 8463 / RFC 6376; both selectors listed in the domain's
`dkim_selectors`, so submitted mail carries both signatures) and a self-signed certificate
unless one is given, and returns the text to show: the DNS records to add and the password.
postmaster@ and abuse@ of every domain go to the admin account (`[smtp] postmaster_account`).
"""

from __future__ import annotations

import datetime
import secrets
from pathlib import Path

from mailsrv.address import Address, AddressError, Domain

_CONFIG = """\
# mailsrv static configuration, written by `mailsrv quickstart`. See docs/config.md.
hostname = "{hostname}"
data_dir = "{data_dir}"

[[tls]]
cert_file = "{cert}"
key_file = "{key}"
hostnames = ["{hostname}"]

{listeners}# Certificates from Let's Encrypt (ACME, RFC 8555), renewed automatically, once the DNS records
# point here and port 80 is reachable: uncomment (docs/operations.md).
# [acme]
# directory_url = "https://acme-v02.api.letsencrypt.org/directory"
# hostnames = ["{hostname}", "mta-sts.{domain}"]
# email = "{admin}"

[web]
# The HTTP/JSON API for applications (docs/webapi.md), at /webapi/v0/ on the web listeners.
webapi_enabled = true

[smtp]
# RFC 5321 §4.5.1: postmaster@ (and abuse@) of every domain reach this account.
postmaster_account = "{postmaster}"
"""


# Listener name, protocol, port, TLS mode: each also on "::" where the machine has IPv6.
_LISTENERS = (
    ("smtp", "smtp", 25, "starttls"),
    ("submission", "submission", 587, "starttls"),
    ("submissions", "submission", 465, "implicit"),
    ("imap", "imap", 143, "starttls"),
    ("imaps", "imap", 993, "implicit"),
    ("http", "http", 80, "none"),  # ACME's HTTP-01 challenge (RFC 8555 §8.3) comes here
    ("https", "http", 443, "implicit"),
)


# The web admin interface is served on loopback listeners only ([web] admin_on_all_listeners):
# its own listener, reached on the machine or through an SSH tunnel.
ADMIN_PORT = 8080
_ADMIN_LISTENER = f"""# The web admin interface (/webadmin/), on loopback only; from elsewhere through a tunnel:
# ssh -L {ADMIN_PORT}:127.0.0.1:{ADMIN_PORT} this-host
[[listeners]]
name = "admin"
protocol = "http"
address = "127.0.0.1"
port = {ADMIN_PORT}
tls = "none"
"""


def _listeners(ipv6: bool) -> str:
    blocks = [
        f'[[listeners]]\nname = "{name}{suffix}"\nprotocol = "{protocol}"\naddress = "{address}"\nport = {port}\n'
        f'tls = "{tls}"\n'
        for suffix, address in [("", "0.0.0.0"), *([("-ipv6", "::")] if ipv6 else [])]
        for name, protocol, port, tls in _LISTENERS
    ]
    return "\n".join([*blocks, _ADMIN_LISTENER]) + "\n"


class QuickstartError(Exception):
    pass


def txt_strings(value: str) -> str:
    """A TXT value as zone-file character-strings of at most 255 octets each (RFC 1035
    §3.3.14); DNS resolvers and DKIM verifiers join them again (RFC 6376 §3.6.2.2)."""
    return " ".join(f'"{value[i : i + 255]}"' for i in range(0, len(value), 255))


def quickstart(
    directory: Path,
    domain_text: str,
    admin_address: str,
    password: str,
    cert: str | None,
    key: str | None,
    hostname: str | None,
    data_dir: Path | None = None,
    ipv6: bool | None = None,
) -> str:
    """Creates the configuration; returns the instructions to print. Raises CLIError-worthy
    QuickstartError / ConfigError / AddressError messages. `data_dir`: where mail lives
    (default DIRECTORY/data; production: /var/lib/mailsrv). `ipv6`: listen on `::` too
    (default: when this machine can)."""
    from mailsrv.auth import adminpassword
    from mailsrv.auth.credentials import CredentialStore
    from mailsrv.config.dynamic import DynamicConfigStore
    from mailsrv.config.load import REPORT_LOCALPART, load_static
    from mailsrv.dns.dkimkeys import create_domain_keys
    from mailsrv.filemodes import set_private_umask
    from mailsrv.listen import ipv6_available
    from mailsrv.ops.domains import mta_sts_policy
    from mailsrv.tlsutil import generate_self_signed

    set_private_umask()  # the config directory, data, keys: private to the service user
    try:
        domain = Domain.parse(domain_text)
        admin = Address.parse(admin_address)
        host = Domain.parse(hostname or f"mail.{domain.ascii}")
    except AddressError as e:
        raise QuickstartError(str(e)) from None
    if admin.domain != domain:
        raise QuickstartError(f"the admin address must be in {domain.ascii}")
    if (cert is None) != (key is None):
        raise QuickstartError("give both --cert and --key, or neither")
    directory = directory.absolute()
    config_path = directory / "mailsrv.toml"
    if config_path.exists():
        raise QuickstartError(f"{config_path} exists already; not overwriting it")
    directory.mkdir(parents=True, exist_ok=True)
    if cert is None or key is None:
        (directory / "tls").mkdir(exist_ok=True)
        cert_path, key_path = directory / "tls" / "cert.pem", directory / "tls" / "key.pem"
        generate_self_signed([host.ascii, f"mta-sts.{domain.ascii}"], cert_path, key_path)
        tls_note = "A self-signed certificate was generated; replace it with a real one (e.g. from ACME)."
    else:
        cert_path, key_path = Path(cert).absolute(), Path(key).absolute()
        tls_note = ""
    if ipv6 is None:
        ipv6 = ipv6_available("::")
    config_path.write_text(
        _CONFIG.format(
            hostname=host.ascii,
            data_dir=data_dir.absolute() if data_dir is not None else "data",
            cert=cert_path,
            key=key_path,
            postmaster=admin.localpart.value,
            domain=domain.ascii,
            admin=admin.display(),
            listeners=_listeners(ipv6),
        )
    )
    config = load_static(config_path)
    selector_base = datetime.date.today().strftime("%Y%m")
    dkim = create_domain_keys(config.data_dir, domain.ascii, selector_base)
    dynamic = DynamicConfigStore(config.dynamic_file)
    dynamic.add_domain(domain.ascii, dkim_selectors=tuple(sel for sel, _ in dkim))
    dynamic.add_account(admin.localpart.value, admin.display())
    # DMARC and TLS reports go to the admin's "DMARC reports" / "TLS reports" mailboxes (ops.reports),
    # by the catchall separator: admin+dmarc@ reaches admin@ without an address of its own.
    dmarc_rua = tls_rua = admin.display()
    if REPORT_LOCALPART.fullmatch(f"{admin.localpart.value}+dmarc"):
        dmarc_rua, tls_rua = (f"{admin.localpart.value}+{tag}@{domain.ascii}" for tag in ("dmarc", "tls"))
        dynamic.update_domain(domain.ascii, dmarc_reports=dmarc_rua, tlsrpt_reports=tls_rua)
    sts_id = mta_sts_policy(config, dynamic.current.domains[domain.ascii]).id
    credentials = CredentialStore(config.data_dir)
    try:
        credentials.set_password_blocking(admin.localpart.value, password)
        # The web admin interface's own password (`mailsrv setadminpassword` changes it).
        admin_password = secrets.token_urlsafe(12)
        adminpassword.set_password(config.data_dir, admin_password, credentials.hasher)
    finally:
        credentials.close()
    records = [
        f"{host.ascii}.  A/AAAA <this server's public addresses>",
        f"{domain.ascii}.  MX 10 {host.ascii}.",
        f'{domain.ascii}.  TXT "v=spf1 mx -all"',
        *(f"{sel}._domainkey.{domain.ascii}.  TXT {txt_strings(txt)}" for sel, txt in dkim),
        f'_dmarc.{domain.ascii}.  TXT "v=DMARC1; p=reject; rua=mailto:{dmarc_rua}"',
        f"_imaps._tcp.{domain.ascii}.  SRV 0 1 993 {host.ascii}.",
        # RFC 6186 §3.1: client configuration by SRV; RFC 8314 §5.1 prefers implicit TLS.
        f"_submissions._tcp.{domain.ascii}.  SRV 0 1 465 {host.ascii}.",
        f"_submission._tcp.{domain.ascii}.  SRV 10 1 587 {host.ascii}.",
        f"autoconfig.{domain.ascii}.  CNAME {host.ascii}.",
        # Outlook's autodiscover (POX) is served at /autodiscover/autodiscover.xml over HTTPS.
        f"_autodiscover._tcp.{domain.ascii}.  SRV 0 1 443 {host.ascii}.",
        # RFC 8461: senders require TLS to the MX once the policy says "enforce"; the policy is
        # served by this server's HTTPS listener for the mta-sts host ([smtp] mta_sts_mode,
        # "testing" until the certificate is from a public CA and covers mta-sts.DOMAIN).
        f"mta-sts.{domain.ascii}.  CNAME {host.ascii}.",
        f'_mta-sts.{domain.ascii}.  TXT "v=STSv1; id={sts_id}"',
        # RFC 8460: daily reports of TLS failures senders saw.
        f'_smtp._tls.{domain.ascii}.  TXT "v=TLSRPTv1; rua=mailto:{tls_rua}"',
    ]
    lines = [
        f"Wrote {config_path} and {config.data_dir}/.",
        f"Admin account {admin.display()} (account name {admin.localpart.value}), password: {password}",
        f"Web admin interface: http://127.0.0.1:{ADMIN_PORT}{config.web.admin_path} (on this machine), login admin,"
        f" password: {admin_password}",
        "",
        "Add these DNS records:",
        *("  " + r for r in records),
        "",
        f"Start the server: twistd --nodaemon --pidfile= mailsrv --config {config_path}",
    ]
    if tls_note:
        lines.insert(2, tls_note)
    return "\n".join(lines)
