"""Time formats of Jaeger's API v3: RFC 3339 timestamps and Go durations."""

from __future__ import annotations

import calendar
import re
import time
from fractions import Fraction

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})$"
)
_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_BARE_NUMBER = re.compile(r"(\d+(\.\d*)?|\.\d+)")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000,
            "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}


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


def parse_go_duration(text: str) -> int:
    """Go duration ('250ms', '1.5s', '1h2m', '0') → nanoseconds; the project's only parser.

    Every part needs a unit, as in Go's time.ParseDuration: a bare number
    other than 0 is refused, since "5" could mean 5 ms or 5 s.
    """
    text = text.strip()
    if text in ("0", "+0"):
        return 0
    if _BARE_NUMBER.fullmatch(text):
        raise ValueError(f"{text!r} has no unit; write e.g. {text}ms or {text}s "
                         "(units: h, m, s, ms, us, ns)")
    position, total = 0, Fraction(0)
    for match in _GO_DURATION_PART.finditer(text):
        if match.start() != position:
            break
        total += Fraction(match.group(1)) * _UNIT_NS[match.group(2)]
        position = match.end()
    if position != len(text) or not text:
        raise ValueError(f"{text!r} is not a duration like 300ms, 1.5s or 1m30s "
                         "(units: h, m, s, ms, us, ns)")
    return int(total)  # Go truncates below a nanosecond too


def format_go_duration(ns: int) -> str:
    """Nanoseconds → the shortest exact Go duration, as a person types it.

    '300ms', '1m30s', '24h', '1500us', '0'; Jaeger and parse_go_duration read it back.
    """
    if ns == 0:
        return "0"
    sign, ns = ("-", -ns) if ns < 0 else ("", ns)
    if ns % 1_000_000_000:  # below a second: one unit that divides evenly
        for unit in ("ms", "us"):
            if ns % _UNIT_NS[unit] == 0:
                return f"{sign}{ns // _UNIT_NS[unit]}{unit}"
        return f"{sign}{ns}ns"
    parts, rest = [], ns
    for unit in ("h", "m", "s"):
        count, rest = divmod(rest, _UNIT_NS[unit])
        if count:
            parts.append(f"{count}{unit}")
    return sign + "".join(parts)


def now_ns() -> int:
    return time.time_ns()
