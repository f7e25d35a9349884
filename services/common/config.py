"""Every knob of the demo app, with its default, in one place.

HotROD hides its performance problems behind "fix" flags so a learner can find a
problem in a trace, flip one flag and see the trace change. Those flags, the
ports, the downstream URLs and the small delays of the simulated backends all
live here, so nothing about the app's behaviour is decided anywhere else.

Each flag has an environment twin (``--fix-db-query-delay`` and
``TQ_FIX_DB_QUERY_DELAY``). The command line wins over the environment, and
the environment wins over the default. ``TQ_MYSTERY=<seed>`` (quest 03) sets
many flags at once, as ``mystery.py`` says; it wins over the other ``TQ_*``
variables, and the command line still wins over it.
"""

import argparse
import os
import re
import sys

from services.common import mystery

HOST = "127.0.0.1"
PORTS = {"frontend": 8080, "customer": 8081, "driver": 8082, "route": 8083}
DOWNSTREAMS = ("customer", "driver", "route")

# The simulated problems, each behind a fix flag.
DB_QUERY_DELAY = 0.300  # seconds a query spends in the "remote" database
DB_CONN_MUTEX = True  # one database connection, so queries queue for it
ROUTE_WORKER_POOL_SIZE = 3  # route calls the frontend makes at the same time
REDIS_ERROR_RATE = 1 / 12  # share of Redis reads that time out

# Latencies that are fine at their defaults. They are flags because the
# slow-span mystery (quest 03) turns one of them up, or the route one down.
PAYMENT_DELAY = 0.005  # the payment provider authorizing a ride
REDIS_FIND_DELAY = 0.020  # FindDriverIDs
REDIS_TIMEOUT_DELAY = 0.030  # a GetDriver read that gets no answer
ROUTE_CALC_DELAY = 0.050  # one route calculation

# Realism for the other simulated backends; not problems, so no flags.
DELAY_JITTER = 0.10  # every simulated delay varies by +/- 10 %
REDIS_GET_DELAY = 0.010
REDIS_MAX_ATTEMPTS = 3
NEARBY_DRIVERS = 10

# Outgoing HTTP calls: give up fast on a service that is not there at all.
HTTP_CONNECT_TIMEOUT = 1.0
HTTP_READ_TIMEOUT = 10.0


def default_url(service):
    """Where a service listens when nobody said otherwise."""
    return f"http://{HOST}:{PORTS[service]}"


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(us|ms|s|m)")
_UNIT_SECONDS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def parse_duration(text):
    """Turn ``300ms`` or ``1.5s`` into seconds; a bare number is refused as ambiguous."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration; write a number with a unit, e.g. 300ms, 5ms or 1.5s"
        )
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def parse_bool(text):
    """Read the yes/no spellings people put in environment variables."""
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not yes or no; use 1/true/yes or 0/false/no")


def _whole_number(text):
    """Return the non-negative integer spelled by `text`, or None."""
    text = text.strip()
    return int(text) if text.isascii() and text.isdigit() else None


def parse_port(text):
    """Accept a TCP port number (0 lets the system pick a free one)."""
    port = _whole_number(text)
    if port is None or port > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)")
    return port


def parse_pool_size(text):
    """Accept a worker count of at least one."""
    size = _whole_number(text)
    if size is None or size < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a worker count (a whole number >= 1)")
    return size


def parse_rate(text):
    """Accept a probability between 0 and 1, such as 0.083."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a rate between 0 and 1, e.g. 0.083")
    return value


def parse_url(text):
    """Accept an http(s) base URL and drop a trailing slash so paths join cleanly."""
    if not text.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"{text!r} is not an http:// or https:// URL")
    return text.rstrip("/")


def parse_host(text):
    """Accept a host name or address to listen on, such as 0.0.0.0 inside a container."""
    if not text.strip():
        raise argparse.ArgumentTypeError("the host must not be empty")
    return text.strip()


def parse_seed(text):
    """Accept an integer seed for the random numbers behind delays and timeouts."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer seed") from None


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors fit on one line.

    ``presets`` are values by environment twin that win over the environment:
    the mystery's settings, when one is on.
    """

    presets = {}

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _env_name(flag):
    return "TQ_" + flag.lstrip("-").upper().replace("-", "_")


def _shown(parse, value):
    """A default as a person would type it, for --help."""
    if value is None:
        return "unset"
    if parse is parse_duration:
        return f"{value * 1000:g}ms"
    if isinstance(value, float):
        return f"{value:.3g}"
    return value


def _add(parser, flag, parse, default, text, env=None):
    """Add one flag whose default comes from its environment twin when that is set."""
    env = env or _env_name(flag)
    raw = parser.presets.get(env, os.environ.get(env))
    if raw is None:
        value = default
    else:
        try:
            value = parse(raw)
        except argparse.ArgumentTypeError as error:
            parser.error(f"environment variable {env}: {error}")
    if parse is parse_bool:
        # A bare switch on the command line turns the fix on.
        parser.add_argument(flag, action="store_true", default=value, help=f"{text} [env {env}]")
    else:
        metavar = parse.__name__.removeprefix("parse_").upper()
        parser.add_argument(flag, type=parse, default=value, metavar=metavar,
                            help=f"{text} [env {env}; default {_shown(parse, value)}]")


def _add_service_flags(parser, service):
    if service == "frontend":
        for name in DOWNSTREAMS:
            _add(parser, f"--{name}-url", parse_url, default_url(name),
                 f"base URL of the {name} service")
        _add(parser, "--fix-route-worker-pool-size", parse_pool_size, ROUTE_WORKER_POOL_SIZE,
             "how many route calls run at the same time")
        _add(parser, "--payment-delay", parse_duration, PAYMENT_DELAY,
             "mean latency of the simulated payment provider")
    elif service == "customer":
        _add(parser, "--fix-db-query-delay", parse_duration, DB_QUERY_DELAY,
             "mean latency of the simulated remote database, e.g. 300ms or 5ms")
        _add(parser, "--fix-disable-db-conn-mutex", parse_bool, not DB_CONN_MUTEX,
             "let queries run side by side instead of queueing for one connection")
    elif service == "driver":
        _add(parser, "--redis-error-rate", parse_rate, REDIS_ERROR_RATE,
             "share of simulated Redis reads that time out")
        _add(parser, "--redis-find-delay", parse_duration, REDIS_FIND_DELAY,
             "mean latency of the simulated Redis lookup of nearby drivers")
        _add(parser, "--redis-timeout", parse_duration, REDIS_TIMEOUT_DELAY,
             "how long a simulated Redis read waits before it times out")
    elif service == "route":
        _add(parser, "--route-calc-delay", parse_duration, ROUTE_CALC_DELAY,
             "mean time one route calculation takes")


def _mystery_seed(parser):
    """The seed in TQ_MYSTERY, or None when no mystery is on."""
    raw = os.environ.get(mystery.ENV, "")
    if not raw.strip():
        return None
    try:
        return parse_seed(raw)
    except argparse.ArgumentTypeError as error:
        parser.error(f"environment variable {mystery.ENV}: {error}")


def parse_args(service, argv=None):
    """Read the flags of one service; bad values end the process with exit code 2.

    The result also says which mystery is on (``mystery``: its seed, or None).
    """
    parser = _Parser(prog=f"python -m services.{service}",
                     description=f"The {service} service of the Trace Quest ride-dispatch demo.",
                     epilog=f"{mystery.ENV}=<seed> turns on the slow-span mystery of quest 03.")
    seed = _mystery_seed(parser)
    parser.presets = mystery.settings_for(seed) if seed is not None else {}
    _add(parser, "--host", parse_host, HOST, "interface to listen on", env="TQ_HOST")
    _add(parser, "--port", parse_port, PORTS[service], "port to listen on",
         env=f"TQ_{service.upper()}_PORT")
    _add(parser, "--seed", parse_seed, None, "seed for the random delays, timeouts and driver ids")
    _add_service_flags(parser, service)
    settings = parser.parse_args(sys.argv[1:] if argv is None else argv)
    settings.mystery = seed
    return settings
