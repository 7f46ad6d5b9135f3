"""accounts.NAME.retired_keep: a duration ("7d", "12h", "1d12h", "30m", "45s") or seconds;
absent or 0 means finished queue messages are not kept. Errors name the file and key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import tomli_w

from mailsrv.config import ConfigError, dump_dynamic
from mailsrv.config.load import format_duration, parse_duration, parse_dynamic

BASE = '[domains."example.org"]\n[accounts.alice]\ndomain = "example.org"\naddresses = ["alice@example.org"]\n'


def _parse(extra: str) -> int:
    path = Path("dynamic.toml")
    return parse_dynamic(path, tomllib.loads(BASE + extra)).accounts["alice"].retired_keep


@pytest.mark.parametrize(
    ("value", "seconds"),
    [('"7d"', 7 * 86400), ('"12h"', 43200), ('"1d12h"', 129600), ('"90m"', 5400), ('"45s"', 45), ('"2w"', 14 * 86400),
     ('"0"', 0), ("3600", 3600), ("0", 0)],
)  # fmt: skip
def test_durations(value: str, seconds: int) -> None:
    assert _parse(f"retired_keep = {value}\n") == seconds


def test_absent_is_not_kept() -> None:
    assert _parse("") == 0


@pytest.mark.parametrize("value", ['"7 days"', '"d"', '"1.5h"', '""', "-5", "true", "1.5"])
def test_bad_values_name_the_key(value: str) -> None:
    with pytest.raises(ConfigError) as e:
        _parse(f"retired_keep = {value}\n")
    assert "accounts.alice.retired_keep" in str(e.value) and "dynamic.toml" in str(e.value)


def test_dump_round_trips_in_the_short_form() -> None:
    config = parse_dynamic(Path("d.toml"), tomllib.loads(BASE + 'retired_keep = "36h"\n'))
    dumped = dump_dynamic(config)
    assert dumped["accounts"]["alice"]["retired_keep"] == "1d12h"
    again = parse_dynamic(Path("d.toml"), tomllib.loads(tomli_w.dumps(dumped)))
    assert again.accounts["alice"].retired_keep == 36 * 3600
    assert "retired_keep" not in dump_dynamic(parse_dynamic(Path("d.toml"), tomllib.loads(BASE)))["accounts"]["alice"]


def test_format_duration() -> None:
    assert [format_duration(s) for s in (0, 45, 3600, 7 * 86400, 90061)] == ["0", "45s", "1h", "7d", "1d1h1m1s"]
    assert all(parse_duration(format_duration(s)) == s for s in (0, 1, 59, 61, 86399, 86400 * 400))
