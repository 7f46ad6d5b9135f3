"""mailsrv.logging: one line per event, text and JSON, connection id as a field."""

from __future__ import annotations

import io
import json

from twisted.logger import Logger, LogLevel, LogPublisher
from twisted.python.failure import Failure

from mailsrv.logging import format_json, format_text, make_observer


def _emit(fmt: str, level: str = "info", **fields: object) -> tuple[str, str]:
    text_out, json_out = io.StringIO(), io.StringIO()
    publisher = LogPublisher(make_observer(text_out, "text"), make_observer(json_out, "json"))
    log = Logger(namespace="mailsrv.test", observer=publisher)
    getattr(log, level)(fmt, **fields)
    return text_out.getvalue(), json_out.getvalue()


def test_text_line_has_time_level_namespace_and_cid() -> None:
    text, _ = _emit("hello {who}", who="world", cid="c7")
    assert text.endswith("\n") and text.count("\n") == 1
    stamp, level, namespace, cid, message = text.rstrip("\n").split(" ", 4)
    assert stamp.endswith("Z") and "T" in stamp
    assert (level, namespace, cid, message) == ("info", "mailsrv.test", "[c7]", "hello world")


def test_text_does_not_repeat_cid_already_in_message() -> None:
    text, _ = _emit("{cid} connect", cid="c9")
    assert text.count("c9") == 1


def test_newlines_are_escaped_one_line_per_event() -> None:
    text, js = _emit("multi\nline {x}", x="a\r\nb")
    assert text.count("\n") == 1 and "multi\\nline a\\r\\nb" in text
    assert js.count("\n") == 1 and json.loads(js)["message"] == "multi\nline a\r\nb"


def test_json_fields() -> None:
    _, js = _emit("stored {n} for {account}", n=3, account="alice@example.org", cid="c1", obj=object())
    record = json.loads(js)
    assert record["level"] == "info" and record["namespace"] == "mailsrv.test"
    assert record["message"] == "stored 3 for alice@example.org"
    assert record["cid"] == "c1" and record["n"] == 3 and record["account"] == "alice@example.org"
    assert "obj" not in record  # only JSON-safe scalar fields


def test_failure_is_kept_on_the_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        failure = Failure()
    event = {
        "log_format": "it failed",
        "log_level": LogLevel.critical,
        "log_namespace": "x",
        "log_time": 0.0,
        "log_failure": failure,
    }
    text = format_text(event)
    assert text.count("\n") == 1 and "ValueError: boom" in text and "critical" in text
    assert "ValueError: boom" in json.loads(format_json(event))["traceback"]


def test_debug_is_dropped_by_default() -> None:
    text, js = _emit("noise", level="debug")
    assert text == "" and js == ""


def test_bad_format_never_raises() -> None:
    text, js = _emit("{missing} field")
    assert text.count("\n") == 1 and js.count("\n") == 1


def test_trace_lines_and_times_as_before() -> None:
    """The fast paths (a "{line}" event's text as it is, a second's text formatted once) give what Twisted's
    formatting and strftime give, also for a line with braces, when the seconds change and at rounding edges."""
    from datetime import UTC, datetime

    from twisted.logger import formatEvent

    from mailsrv.logging import _message, _time

    line = "0123: accepted message-id=<{a}@b> from=<x@example.net> size=5 client=unknown[127.0.0.1]"
    assert _message({"log_format": "{line}", "line": line}) == formatEvent({"log_format": "{line}", "line": line})
    text, data = _emit("{line}", line=line, cid="c9")
    assert text.rstrip("\n").split(" ", 4)[4] == line and json.loads(data)["message"] == line
    for stamp in (0.0, 1.0, 59.9994, 59.9995, 1.9999996, 1765078212.5, 1765078212.9999, 1765078213.0001, 1765078212.0):
        moment = datetime.fromtimestamp(stamp, UTC)
        assert (
            _time({"log_time": stamp}) == moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
        )


def test_time_is_what_datetime_gives_including_rounding_into_the_next_second() -> None:
    from datetime import UTC, datetime

    from mailsrv.logging import _time

    for stamp in (0.0, 1765090000.0, 1765090000.0004999, 1765090000.9995, 1765090000.9999995, 1765090000.123456):
        moment = datetime.fromtimestamp(stamp, UTC)
        expected = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
        assert _time({"log_time": stamp}) == expected, stamp


def test_twist_text_logs_in_our_line_format() -> None:
    from twisted.logger import jsonFileLogObserver, textFileLogObserver

    from mailsrv.daemon import DaemonService, install_logging

    for twist_format, factory in (("text", textFileLogObserver), ("json", jsonFileLogObserver)):
        options = {"logFile": io.StringIO(), "logFormat": twist_format, "fileLogObserverFactory": factory}
        install_logging(DaemonService(), options, None)
        out = io.StringIO()
        observer = options["fileLogObserverFactory"](out)  # type: ignore[operator]
        Logger(namespace="mailsrv.test", observer=observer).info("hello", cid="c3")
        if twist_format == "text":
            assert out.getvalue().split(" ", 2)[1:] == ["info", "mailsrv.test [c3] hello\n"]
        else:
            assert options["fileLogObserverFactory"] is jsonFileLogObserver  # Twisted's JSON stays
