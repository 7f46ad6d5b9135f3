"""The daemon the queue's daemon-level tests run: its queue delivers to a sink on a
loopback port (`[smtp] remote_port`), and its own DNS server sends each destination
domain's MX there."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tests.daemon import RunningDaemon, write_config


def start_queue_daemon(
    directory: Path, sink_port: int, domains: Sequence[str] = ("remote.example",), alice_keeps: str = "1d"
) -> RunningDaemon:
    """`alice_keeps`: alice's `retired_keep`, so that the retired list shows her outcomes."""
    daemon = write_config(directory)
    with daemon.config_path.open("a") as config:
        config.write(f"\n[smtp]\nremote_port = {sink_port}\n")
    dynamic = daemon.data_dir / "dynamic.toml"
    dynamic.write_text(
        dynamic.read_text().replace('[accounts."alice"]\n', f'[accounts."alice"]\nretired_keep = "{alice_keeps}"\n')
    )
    daemon.start()
    assert daemon.dns is not None
    for domain in domains:
        daemon.dns.add(domain, "MX", f"10 mx.{domain}.")
        daemon.dns.add(f"mx.{domain}", "A", "127.0.0.1")
    return daemon
