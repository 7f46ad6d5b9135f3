"""A throwaway Postfix for the benchmarks that compare against it (bench/smtp.py,
bench/queue.py): its own config, queue and data directories under `base`, smtpd on a
loopback port instead of 25, no chroot, the log discarded. Needs root (Postfix drops to
its `postfix` user) and the Debian package `postfix`.

Imported as `bench.postfix` with the checkout first on sys.path (both scripts put it there).
"""

from __future__ import annotations

import os
import pwd
import re
from pathlib import Path

POSTFIX = "/usr/sbin/postfix"


def write_config(base: Path, port: int, main_cf: str) -> Path:
    """Creates base/{etc,spool,data} and returns the config directory. `main_cf` holds the
    benchmark's own settings; the directories, names and limits common to both come first."""
    conf, spool, data = base / "etc", base / "spool", base / "data"
    for d in (conf, spool, data):
        d.mkdir(parents=True)
    pf = pwd.getpwnam("postfix")
    os.chown(data, pf.pw_uid, pf.pw_gid)
    # maillog_file must be /dev/stdout or under /var (maillog_file_prefixes); the scripts
    # start Postfix with stdout on /dev/null, so the log goes nowhere.
    (conf / "main.cf").write_text(
        f"""compatibility_level = 3.6
queue_directory = {spool}
data_directory = {data}
mail_owner = postfix
myhostname = bench.example.org
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_client_connection_count_limit = 0
default_process_limit = 100
maillog_file = /dev/stdout
"""
        + main_cf
    )
    lines = []
    for line in Path("/etc/postfix/master.cf").read_text().splitlines():
        if re.match(r"^smtp\s+inet\s", line):
            line = f"127.0.0.1:{port} inet n - n - - smtpd"  # our port instead of 25
        elif re.match(r"^\w\S*\s+(unix|fifo|inet)\s", line):
            fields = line.split()
            fields[4] = "n"  # no chroot: the temporary queue has no chroot files
            line = " ".join(fields)
        lines.append(line)
    (conf / "master.cf").write_text("\n".join(lines) + "\n")
    return conf
