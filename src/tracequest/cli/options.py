"""The lab's command-line options, made from the knob table.

`tracequest up` takes every port, the demo's fixes, failures and delays, and
the store's bound; `tracequest mystery new` and `start` take the ports. Each
option is a knob of ``services/common/knobs.py`` with its environment twin as
the default, so an option, its help and its check are written once, there.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import fields

from services.common.knobs import KNOBS, SERVICES, Knob, KnobError, check_env_names
from tracequest.errors import TraceQuestError
from tracequest.host.ports import Ports
from tracequest.lab.settings import LabSettings


class UsageError(TraceQuestError):
    """A value the command cannot use; reported on one line with exit code 2 (the CLI catches it
    before any other TraceQuestError, which exits 1)."""


def add_knob_options(parser: argparse.ArgumentParser) -> None:
    """Every knob `up` takes, in three groups: ports, the demo's knobs, storage."""
    groups = {
        "port": parser.add_argument_group("ports", "Move any lab port, e.g. when something "
                                                   "else already holds 8080 or 4317."),
        "service": parser.add_argument_group("the demo's knobs", "Fix flags, failures and "
                                                                 "simulated delays, passed to the services."),
        "storage": parser.add_argument_group("storage", "How much the embedded backend keeps; the "
                                                        "oldest whole traces go first."),
    }
    for knob in up_knobs():
        _add_knob(groups[_knob_role(knob)], knob)


def add_port_options(parser: argparse.ArgumentParser) -> None:
    """`up`'s port options, for other commands that start a lab (`mystery new`, `mystery start`)."""
    group = parser.add_argument_group("ports", "Move any lab port, as `tracequest up` can.")
    for knob in up_knobs():
        if knob.group == "port":
            _add_knob(group, knob)


def _add_knob(group, knob: Knob) -> None:
    switch = {"nargs": "?", "const": "on"} if knob.kind == "bool" else {}
    group.add_argument(knob.flag, dest=_dest(knob), type=_knob_type(knob), metavar=_metavar(knob),
                       help=_knob_help(knob), **switch)


def ports_from_args(args) -> Ports | None:
    """The ports asked for by option or environment twin; None when none was."""
    chosen = _chosen_knobs(args, [k for k in up_knobs() if k.group == "port"])
    return Ports(**{_port_field(k): v for k, v in chosen.items()}) if chosen else None


def up_knobs() -> list[Knob]:
    """The knobs `up` takes: every port, the services' fixes/failures/delays, the store's bound."""
    port_fields = {f.name for f in fields(Ports)}
    chosen = []
    for knob in KNOBS:
        if knob.group == "port" and _port_field(knob) in port_fields:
            chosen.append(knob)
        elif knob.group in ("fix", "failure", "delay") and set(SERVICES) & set(knob.readers):
            chosen.append(knob)
        elif knob.group == "storage" and knob.name in ("max-spans", "max-age"):
            chosen.append(knob)
    return chosen


def _knob_role(knob: Knob) -> str:
    return knob.group if knob.group in ("port", "storage") else "service"


def _port_field(knob: Knob) -> str:
    """Knob `otlp-grpc-port` is field `otlp_grpc` of Ports."""
    return knob.name.removesuffix("-port").replace("-", "_")


def _dest(knob: Knob) -> str:
    return "knob_" + knob.name.replace("-", "_")


def _metavar(knob: Knob) -> str:
    return {"bool": "on|off", "duration": "DURATION", "port": "PORT", "rate": "RATE",
            "url": "URL", "host": "HOST"}.get(knob.kind, "N")


def _knob_type(knob: Knob):
    def parse(text: str):
        try:
            value = knob.parse(text)
        except KnobError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        _check_lab_value(knob, value)
        return value
    parse.__name__ = knob.kind  # argparse names the type in some messages
    return parse


def _check_lab_value(knob: Knob, value) -> None:
    """What a service would accept but a lab cannot use: port 0 leaves the lab unable to find it."""
    if knob.kind == "port" and value == 0:
        raise argparse.ArgumentTypeError("the lab needs a fixed port, 1 to 65535, not 0")


def _knob_help(knob: Knob) -> str:
    default = "unset" if knob.default is None else knob.show(knob.default)
    raw = os.environ.get(knob.env)
    if raw:
        return f"{knob.help} (default: {raw}, from ${knob.env}; without it {default})"
    return f"{knob.help} (default: {default}; env {knob.env})"


def _chosen_knobs(args, knobs: list[Knob] | None = None) -> dict[Knob, object]:
    """Knob values from the command line, else from their environment twins in the shell."""
    try:
        check_env_names(sorted(name for name in os.environ if name.startswith("TQ_")))
    except KnobError as exc:
        raise UsageError(f"in your environment: {exc}") from None
    chosen = {}
    for knob in up_knobs() if knobs is None else knobs:
        value = getattr(args, _dest(knob), None)
        if value is None and os.environ.get(knob.env):
            raw = os.environ[knob.env]
            try:
                value = knob.parse(raw)
                _check_lab_value(knob, value)
            except (KnobError, argparse.ArgumentTypeError) as exc:
                raise UsageError(f"{knob.env}={raw!r} in your environment: {exc}") from None
        if value is not None:
            chosen[knob] = value
    return chosen


def lab_settings(args) -> LabSettings:
    """The settings `up` asked for: options first, then environment twins, then defaults."""
    chosen = _chosen_knobs(args)
    given = {knob.name: value for knob, value in chosen.items()}
    topology = getattr(args, "topology", None) or "single"
    backend = args.backend or ("collector" if topology == "scale-out" else "embedded")
    if topology == "scale-out" and backend != "collector":
        raise UsageError(f"--topology scale-out runs its own collectors in front of real Jaeger; "
                         f"leave out --backend {backend} (it implies --backend collector)")
    if topology == "scale-out" and args.collector_config:
        raise UsageError("--topology scale-out loads compose/collector/agent-trace-id.yaml and "
                         "gateway.yaml; --collector-config does not apply to it")
    if args.collector_config and backend not in ("collector", "fan-out"):
        raise UsageError("--collector-config applies to --backend collector or fan-out only")
    storage = [k.flag for k in up_knobs() if k.group == "storage" and getattr(args, _dest(k)) is not None]
    if storage and backend != "embedded":
        raise UsageError(f"{storage[0]} applies to the embedded backend only; "
                         f"the {backend} backend keeps its own limits")
    jaeger_storage = getattr(args, "storage", None) or "memory"
    if jaeger_storage != "memory" and backend == "embedded":
        raise UsageError(f"--storage {jaeger_storage} applies to --backend jaeger, collector or fan-out; "
                         "the embedded backend always keeps its spans in .tracequest/spans.db")
    ports = Ports(**{_port_field(k): v for k, v in chosen.items() if k.group == "port"})
    env = {k.env: k.show(v) for k, v in chosen.items() if _knob_role(k) == "service"}
    embedded = backend == "embedded"
    return LabSettings(backend=backend, collector_config=args.collector_config or "collector",
                       ports=ports, service_env=env,
                       max_spans=given.get("max-spans") if embedded else None,
                       max_age_s=given.get("max-age") if embedded else None,
                       storage=jaeger_storage, topology=topology)
