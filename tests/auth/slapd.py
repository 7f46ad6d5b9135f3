"""A real OpenLDAP `slapd` for tests: own config, own database, loopback port, test CA.

`start_slapd(directory)` writes a slapd.conf (core, cosine, nis, inetorgperson schemas; mdb
database; TLS with a certificate from a CA generated here), loads `LDIF` with slapadd, runs
`slapd -d 0` in the foreground on ldap://127.0.0.1:PORT/ and waits until it answers. The
system's slapd service is never used.
"""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.certs import TestCA
from tests.ports import free_port
from tests.tools import require_program

BASE = "dc=example,dc=org"
ADMIN_DN = f"cn=admin,{BASE}"
ADMIN_PASSWORD = "adminsecret"
SERVICE_DN = f"cn=mailsrv,ou=services,{BASE}"
SERVICE_PASSWORD = "servicesecret"

LDIF = f"""dn: {BASE}
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=people,{BASE}
objectClass: organizationalUnit
ou: people

dn: ou=services,{BASE}
objectClass: organizationalUnit
ou: services

dn: ou=groups,{BASE}
objectClass: organizationalUnit
ou: groups

dn: {SERVICE_DN}
objectClass: person
cn: mailsrv
sn: service
userPassword: {SERVICE_PASSWORD}

dn: uid=dora,ou=people,{BASE}
objectClass: inetOrgPerson
uid: dora
cn: Dora Directory
sn: Directory
mail: dora@example.org
mail: d.directory@example.org
userPassword: dorapass

dn: uid=eve,ou=people,{BASE}
objectClass: inetOrgPerson
uid: eve
cn: Eve Outsider
sn: Outsider
mail: eve@example.org
userPassword: evepass

dn: uid=finn,ou=people,{BASE}
objectClass: inetOrgPerson
uid: finn
cn: Finn Fresh
sn: Fresh
mail: finn@example.org
userPassword: finnpass

dn: cn=mailusers,ou=groups,{BASE}
objectClass: groupOfNames
cn: mailusers
member: uid=dora,ou=people,{BASE}
member: uid=finn,ou=people,{BASE}

dn: cn=mailadmins,ou=groups,{BASE}
objectClass: groupOfNames
cn: mailadmins
member: uid=eve,ou=people,{BASE}
"""


def make_ca_and_server_cert(directory: Path) -> tuple[Path, Path, Path]:
    """(ca.pem, server.pem, server.key) for 127.0.0.1 and localhost."""
    ca = TestCA(directory)
    cert_path, key_path = directory / "server.pem", directory / "server.key"
    ca.issue(["localhost", "127.0.0.1"], cert_path, key_path)
    return ca.path, cert_path, key_path


@dataclass
class Slapd:
    directory: Path
    port: int
    ca_path: Path
    process: subprocess.Popen[bytes] | None = None
    ldaps_port: int = 0  # implicit TLS listener (0: none)

    def mailsrv_section(self, password_file: Path) -> str:
        """The daemon's `[ldap]` section for this directory (writes the service password)."""
        password_file.write_text(SERVICE_PASSWORD)
        return f"""
[ldap]
uris = ["{self.uri}"]
bind_dn = "{SERVICE_DN}"
bind_password_file = "{password_file}"
user_base = "ou=people,{BASE}"
user_filter = "(&(objectClass=inetOrgPerson)(|(mail={{address}})(uid={{username}})))"
account_attribute = "uid"
address_attributes = ["mail"]
mail_group_dn = "cn=mailusers,ou=groups,{BASE}"
ca_file = "{self.ca_path}"
timeout = 3.0
"""

    @property
    def uri(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_uri(self) -> str:
        return f"ldaps://127.0.0.1:{self.ldaps_port}"

    def start(self, timeout: float = 20.0) -> None:
        log = (self.directory / "slapd.log").open("ab")
        listeners = f"{self.uri}/" + (f" {self.ldaps_uri}/" if self.ldaps_port else "")
        self.process = subprocess.Popen(
            ["slapd", "-d", "0", "-f", str(self.directory / "slapd.conf"), "-h", listeners],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError("slapd exited:\n" + (self.directory / "slapd.log").read_text(errors="replace"))
            try:
                for port in (self.port, self.ldaps_port) if self.ldaps_port else (self.port,):
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("slapd did not listen") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def modify(self, ldif: str) -> None:
        """Applies an LDIF change as the directory admin (ldapmodify from ldap-utils)."""
        subprocess.run(
            ["ldapmodify", "-x", "-H", self.uri, "-D", ADMIN_DN, "-w", ADMIN_PASSWORD],
            input=ldif.encode(),
            check=True,
            capture_output=True,
        )


def start_slapd(directory: Path) -> Slapd:
    require_program("slapd", package="slapd")
    require_program("ldapmodify", package="ldap-utils")
    directory.mkdir(parents=True, exist_ok=True)
    db = directory / "db"
    db.mkdir()
    ca, cert, key = make_ca_and_server_cert(directory)
    (directory / "slapd.conf").write_text(
        f"""include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {directory}/slapd.pid
TLSCACertificateFile {ca}
TLSCertificateFile {cert}
TLSCertificateKeyFile {key}
database mdb
maxsize 10485760
suffix "{BASE}"
rootdn "{ADMIN_DN}"
rootpw {ADMIN_PASSWORD}
directory {db}
access to attrs=userPassword by self write by anonymous auth by * none
access to * by * read
"""
    )
    (directory / "data.ldif").write_text(LDIF)
    subprocess.run(
        ["slapadd", "-f", str(directory / "slapd.conf"), "-l", str(directory / "data.ldif")],
        check=True,
        capture_output=True,
    )
    port = free_port()
    ldaps_port = free_port()
    slapd = Slapd(directory, port, ca, ldaps_port=ldaps_port)
    slapd.start()
    return slapd
