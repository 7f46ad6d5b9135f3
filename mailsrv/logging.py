"""Log output of the daemon: one line per event, as text or as JSON lines.

Invariants:
- Every event becomes exactly one line ending in "\\n": newlines inside a message or a
  traceback are escaped, so `journalctl`, `grep` and log shippers see whole events.
- The connection id (`cid`, from `Server.new_connection_id`) is a field of its own in JSON
  and appears in text lines even when the message format does not mention it.
- An observer never raises: a value that cannot be formatted is logged as its repr.

Text line: `2026-11-29T01:02:03.456Z info mailsrv.smtpserver.session [c12] message`.
JSON line: `{"time": ..., "level": ..., "namespace": ..., "message": ..., "cid": ..., ...}` with
every other event field whose value is a string, number or boolean (systemd/journald friendly:
no RFC 7464 record separators, unlike Twisted's `jsonFileLogObserver`).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import IO, Any, Literal

from twisted.logger import FileLogObserver, ILogObserver, LogEvent, LogLevel, formatEvent
from twisted.python.failure import Failure

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")


_second: tuple[int | None, str] = (None, "")  # the last second formatted, and its text


def _time(event: LogEvent) -> str:
    global _second
    stamp = event.get("log_time")
    if not isinstance(stamp, int | float):
        return "-"
    # What datetime.fromtimestamp gives, without building one per line: the fraction rounded
    # to microseconds (half to even), carried into the second when it rounds up to one.
    second = math.floor(stamp)
    micros = round((stamp - second) * 1_000_000)
    if micros >= 1_000_000:
        second, micros = second + 1, micros - 1_000_000
    if _second[0] != second:  # strftime once a second: a busy daemon logs many lines in each
        _second = (second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S."))
    return f"{_second[1]}{micros // 1000:03d}Z"


def _level(event: LogEvent) -> str:
    level = event.get("log_level")
    return level.name if level in _PRIORITY else "info"  # type: ignore[union-attr]


def _message(event: LogEvent) -> str:
    if event.get("log_format") == "{line}" and isinstance(event.get("line"), str):
        # The mail trace lines (mailsrv.maillog) are formatted already: no format string to parse.
        return str(event["line"])
    try:
        text = formatEvent(event)
    except Exception:  # formatEvent already guards, but an observer must never raise
        text = repr(event.get("log_format"))
    if not text and "log_io" in event:  # print() output captured by Twisted
        text = str(event["log_io"])
    return text


def _failure_text(event: LogEvent) -> str | None:
    failure = event.get("log_failure")
    if not isinstance(failure, Failure):
        return None
    try:
        return failure.getTraceback().rstrip("\n")
    except Exception:
        return repr(failure.value)


def _namespace(event: LogEvent) -> str:
    namespace = str(event.get("log_namespace", "-"))
    # Events from twisted.python.log (Twisted's older modules) carry no useful namespace.
    return "twisted" if namespace == "log_legacy" else namespace


def _one_line(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n")


def format_text(event: LogEvent) -> str:
    parts = [_time(event), _level(event), _namespace(event)]
    cid = event.get("cid")
    fmt = event.get("log_format") or ""
    if cid is not None and "{cid}" not in str(fmt):
        parts.append(f"[{cid}]")
    parts.append(_message(event))
    failure = _failure_text(event)
    if failure is not None:
        parts.append(failure)
    return _one_line(" ".join(parts)) + "\n"


# Fields twisted.python.log adds to every event; they say nothing the line does not.
_LEGACY_KEYS = frozenset({"format", "isError", "message", "why"})


def format_json(event: LogEvent) -> str:
    record: dict[str, Any] = {
        "time": _time(event),
        "level": _level(event),
        "namespace": _namespace(event),
        "message": _message(event),
    }
    for key, value in event.items():
        if key.startswith("log_") or key in record or key in _LEGACY_KEYS:
            continue
        if key == "system" and value == "-":
            continue
        if isinstance(value, str | int | float | bool) or value is None:
            record[key] = value
    failure = _failure_text(event)
    if failure is not None:
        record["traceback"] = failure
    # ensure_ascii keeps the line 7-bit; json never emits a raw newline inside strings.
    return json.dumps(record, ensure_ascii=True, default=repr) + "\n"


FORMATTERS: dict[LogFormat, Callable[[LogEvent], str]] = {"text": format_text, "json": format_json}


_PRIORITY = {LogLevel.debug: 0, LogLevel.info: 1, LogLevel.warn: 2, LogLevel.error: 3, LogLevel.critical: 4}


class _LevelFilter:
    """Drops events below a level (twistd has no level option; `twist` filters itself)."""

    def __init__(self, observer: Callable[[LogEvent], None], min_level: Any) -> None:
        self.observer = observer
        self.min_level = min_level

    def __call__(self, event: LogEvent) -> None:
        priority = _PRIORITY.get(event.get("log_level", LogLevel.info), 1)
        if priority >= _PRIORITY.get(self.min_level, 1):
            self.observer(event)


def make_observer(output: IO[str], log_format: LogFormat = "text", min_level: Any = LogLevel.info) -> ILogObserver:
    """An observer writing one line per event of `min_level` or above to `output`."""
    observer: Any = FileLogObserver(output, FORMATTERS[log_format])
    if min_level == LogLevel.debug:
        return observer  # type: ignore[no-any-return]
    return _LevelFilter(observer, min_level)  # type: ignore[return-value]


def observer_factory(log_format: LogFormat) -> Callable[[IO[str]], ILogObserver]:
    """For `twist` (`python -m twisted`), whose runner takes a factory of file observers and
    filters by `--log-level` itself."""

    def factory(output: IO[str]) -> ILogObserver:
        return make_observer(output, log_format, LogLevel.debug)

    return factory


def open_log_output(logfile: str | None, nodaemon: bool) -> IO[str]:
    """Where twistd would write: stdout for `--nodaemon` without `--logfile` (or `-`),
    otherwise the named file (default twistd.log), appended to and line-buffered."""
    if logfile == "-" or (not logfile and nodaemon):
        return sys.stdout
    return open(logfile or "twistd.log", "a", buffering=1, encoding="utf-8")


class RecentLog:
    """The last `size` warnings and errors, for the admin interface's "recent errors" view: a
    log observer (the daemon adds it to the global log publisher) that keeps a bounded deque,
    so it costs a fixed amount of memory whatever the log rate."""

    def __init__(self, size: int = 200) -> None:
        from collections import deque

        self.entries: deque[tuple[str, str, str, str]] = deque(maxlen=size)  # (time, level, namespace, text)

    def __call__(self, event: LogEvent) -> None:
        level = event.get("log_level")
        if level not in (LogLevel.warn, LogLevel.error, LogLevel.critical):
            return
        try:
            text = _message(event)
            failure = _failure_text(event)
            if failure:
                text = f"{text}\n{failure}"
            self.entries.append((_time(event), _level(event), _namespace(event), text[:4000]))
        except Exception:  # an observer never raises
            pass

    def observer(self) -> ILogObserver:
        return self  # type: ignore[return-value]

    def recent(self, limit: int) -> list[tuple[str, str, str, str]]:
        """Newest first."""
        out = list(self.entries)[-limit:] if limit > 0 else []
        out.reverse()
        return out
