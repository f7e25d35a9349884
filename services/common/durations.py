"""Go durations ("300ms", "1.5s", "2h45m", "1us", "0"): the project's only parser and printer.

The knob table reads every duration knob with these two functions, and the
library (``tracequest.traces.timefmt``) takes them from here, so the demo, the
lab and the query API agree on one syntax. It is Go's ``time.ParseDuration``
syntax without a sign: one or more parts, each a number and a unit (h, m, s,
ms, us or µs, ns), such as ``1h2m3.5s`` or ``.5s``; a bare ``0`` is zero. This
module imports nothing from the library: the services sit below it.
"""

from __future__ import annotations

import re
from fractions import Fraction

_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_BARE_NUMBER = re.compile(r"(\d+(\.\d*)?|\.\d+)")
UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000,
           "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}


def parse_go_duration(text: str) -> int:
    """Go duration ('250ms', '1.5s', '1h2m', '0') → nanoseconds; ValueError names the bad text.

    Every part needs a unit, as in Go's time.ParseDuration: a bare number
    other than 0 is refused, since "5" could mean 5 ms or 5 s. A sign is
    refused too: no knob or query takes a negative duration.
    """
    text = text.strip()
    if text in ("0", "+0"):
        return 0
    if _BARE_NUMBER.fullmatch(text):
        raise ValueError(f"{text!r} has no unit; write e.g. {text}ms or {text}s "
                         "(units: h, m, s, ms, us, ns)")
    position, total = 0, Fraction(0)
    for match in _PART.finditer(text):
        if match.start() != position:
            break
        total += Fraction(match.group(1)) * UNIT_NS[match.group(2)]
        position = match.end()
    if position != len(text) or not text:
        raise ValueError(f"{text!r} is not a duration like 300ms, 1.5s or 1m30s "
                         "(units: h, m, s, ms, us, ns)")
    return int(total)  # Go truncates below a nanosecond too


def format_go_duration(ns: int) -> str:
    """Nanoseconds → the shortest exact Go duration, as a person types it.

    '300ms', '1m30s', '24h', '1500us', '0'; Jaeger and parse_go_duration read
    it back. A negative count gets a leading '-', which Go reads and
    parse_go_duration refuses.
    """
    if ns == 0:
        return "0"
    sign, ns = ("-", -ns) if ns < 0 else ("", ns)
    if ns % 1_000_000_000:  # below a second: one unit that divides evenly
        for unit in ("ms", "us"):
            if ns % UNIT_NS[unit] == 0:
                return f"{sign}{ns // UNIT_NS[unit]}{unit}"
        return f"{sign}{ns}ns"
    parts, rest = [], ns
    for unit in ("h", "m", "s"):
        count, rest = divmod(rest, UNIT_NS[unit])
        if count:
            parts.append(f"{count}{unit}")
    return sign + "".join(parts)
