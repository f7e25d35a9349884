"""The services' command lines, made from the knob table, and the demo's fixed constants.

HotROD hides its performance problems behind "fix" flags so a learner can find a
problem in a trace, flip one flag and see the trace change. Those flags, the
ports, the downstream URLs and the simulated delays are knobs, listed once in
``knobs.py``; this module turns a service's knobs into its ``argparse`` parser.

Each flag has an environment twin (``--fix-db-query-delay`` and
``TQ_FIX_DB_QUERY_DELAY``). The command line wins over the environment, and
the environment wins over the default. ``TQ_MYSTERY=<seed>`` (quest 03) sets
many flags at once, as ``mystery.py`` says; it wins over the other ``TQ_*``
variables, and the command line still wins over it. A ``TQ_*`` variable that
is no knob stops the service, naming the nearest knob: a typo must not leave
a problem silently unfixed.
"""

import argparse
import os
import sys

from services.common import knobs, mystery

HOST = knobs.HOST
DOWNSTREAMS = ("customer", "driver", "route")

# Realism for the simulated backends; not problems, so no knobs.
DELAY_JITTER = 0.10  # every simulated delay varies by +/- 10 %
REDIS_MAX_ATTEMPTS = 3
NEARBY_DRIVERS = 10

# Outgoing HTTP calls: give up fast on a service that is not there at all.
HTTP_CONNECT_TIMEOUT = 1.0
HTTP_READ_TIMEOUT = 10.0


def default(name):
    """A knob's default value, for the services' own function defaults."""
    return knobs.knob(name).default


def default_url(service):
    """Where a service listens when nobody said otherwise."""
    return f"http://{HOST}:{default(f'{service}-port')}"


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors fit on one line and name the nearest flag."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")

    def parse_args(self, args=None, namespace=None):
        settings, unknown = self.parse_known_args(args, namespace)
        if unknown:
            self.error(self._unknown_message(unknown[0]))
        return settings

    def _unknown_message(self, argument):
        flag = argument.split("=", 1)[0]
        flags = [o for action in self._actions for o in action.option_strings if o.startswith("--")]
        if flag.startswith("--") and flags:
            return str(knobs.UnknownKnob(flag, knobs.nearest(flag, flags)))
        return f"unrecognized argument {argument!r}; see --help"


def _type(knob):
    """The knob's parser as an argparse type: its message becomes the error line."""

    def parse(text):
        try:
            return knob.parse(text)
        except knobs.KnobError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    parse.__name__ = knob.kind
    return parse


def _help(knob):
    shown = knob.show(knob.default) or "unset"
    return f"{knob.help} [env {knob.env}; default {shown}]"


def _add(parser, knob, raw, service):
    """Add one knob's flag; its starting value comes from `raw` (environment or mystery) if set."""
    value = knob.default
    if raw is not None:
        try:
            value = knob.parse(raw)
        except knobs.KnobError as error:
            parser.error(f"environment variable {knob.env}: {error}")
    if knob.name == f"{service}-port":
        # A service's own port is also plain --port, as every server spells it.
        names, dest = ("--port", knob.flag), "port"
    else:
        names, dest = (knob.flag,), knob.dest
    if knob.kind == "bool":
        # A bare switch turns it on; "--flag off" turns it off again.
        parser.add_argument(*names, dest=dest, type=_type(knob), nargs="?", const=True,
                            default=value, metavar="on|off", help=_help(knob))
    else:
        parser.add_argument(*names, dest=dest, type=_type(knob), default=value,
                            metavar=knob.kind.upper(), help=_help(knob))


def _mystery_seed(parser, environ):
    """The seed in TQ_MYSTERY, or None when no mystery is on."""
    raw = environ.get(mystery.ENV, "")
    if not raw.strip():
        return None
    try:
        return knobs.knob("seed").parse(raw)
    except knobs.KnobError as error:
        parser.error(f"environment variable {mystery.ENV}: {error}")


def make_parser(service, environ=None):
    """The service's parser, its defaults already taken from `environ` and the mystery.

    Returns (parser, mystery seed or None). Exits 2 on an unknown TQ_* name or a bad value.
    """
    environ = os.environ if environ is None else environ
    parser = _Parser(prog=f"python -m services.{service}", allow_abbrev=False,
                     description=f"The {service} service of the Trace Quest ride-dispatch demo.",
                     epilog=f"{mystery.ENV}=<seed> turns on the slow-span mystery of quest 03. "
                            "Every knob: python -m services.common.knobs")
    try:
        knobs.check_env_names(environ)
    except knobs.UnknownKnob as error:
        parser.error(str(error))
    seed = _mystery_seed(parser, environ)
    presets = mystery.settings_for(seed) if seed is not None else {}
    for knob in knobs.for_reader(service):
        _add(parser, knob, presets.get(knob.env, environ.get(knob.env)), service)
    return parser, seed


def parse_args(service, argv=None, environ=None):
    """Read the flags of one service; bad values end the process with exit code 2.

    The result also says which mystery is on (``mystery``: its seed, or None).
    """
    parser, seed = make_parser(service, environ)
    settings = parser.parse_args(sys.argv[1:] if argv is None else argv)
    settings.mystery = seed
    return settings
