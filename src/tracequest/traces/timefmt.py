"""Time formats of Jaeger's API v3: RFC 3339 timestamps and Go durations.

The Go durations are parsed and printed by ``services.common.durations``, the
one parser the knob table uses too; they are imported here so the library
keeps naming them ``tracequest.traces.timefmt.parse_go_duration`` and
``format_go_duration``. (The library may import the services; the services
never import the library.)
"""

from __future__ import annotations

import calendar
import re
import time

from services.common.durations import format_go_duration, parse_go_duration

__all__ = ["format_go_duration", "format_rfc3339", "now_ns", "parse_go_duration", "parse_rfc3339"]

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})$"
)


def parse_rfc3339(text: str) -> int:
    """RFC 3339 timestamp → Unix nanoseconds; ValueError names the bad value."""
    match = _RFC3339.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not an RFC 3339 time like 2026-01-02T15:04:05Z")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        seconds = calendar.timegm(
            (int(year), int(month), int(day), int(hour), int(minute), int(second), 0, 0, 0)
        )
    except (ValueError, OverflowError):
        raise ValueError(f"{text!r} is not a valid date") from None
    if not (1 <= int(month) <= 12 and 1 <= int(day) <= 31 and int(hour) < 24 and int(minute) < 60 and int(second) < 61):
        raise ValueError(f"{text!r} is not a valid date")
    if zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    nanos = int((fraction or "0").ljust(9, "0"))
    return seconds * 1_000_000_000 + nanos


def format_rfc3339(ns: int) -> str:
    """Unix nanoseconds → RFC 3339 in UTC with nanosecond precision."""
    seconds, nanos = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"


def now_ns() -> int:
    return time.time_ns()
