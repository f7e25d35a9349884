"""Quest 09, two backends and a metric, checked: starter, solution, and each wrong config.

The check runs as a learner's would (`pytest checks/test_09_two_backends.py`
in a subprocess, reading the config from $TRACEQUEST_LABS_DIR); a wrong
config is a folder in tests/quest_cases/09-*/ holding only the collector.yaml
that differs from the reference solution.

Most wrong configs fail on the file alone, before anything starts: the
collector refuses them in `validate`, or the check reads their shape. Only
the solution and the configs whose mistake shows in the backends (LIVE) start
the fan-out lab: Jaeger, Zipkin (a JVM: the slowest start), Prometheus and
the collector, each on free ports.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import re
import shutil

import pytest
from test_quests import failure_text, overlay_labs, run_checks

from tracequest.quests.registry import get_quest
from tracequest.quests.results import RunResults

ROOT = Path(__file__).resolve().parent.parent
CASES = Path(__file__).resolve().parent / "quest_cases"
FOLDER = "09-two-backends"

STARTER = ["the traces pipeline to export to Zipkin as well as to Jaeger",
           "exporters: [otlp/jaeger]: nothing goes to Zipkin", "define an exporter of type zipkin"]
# Wrong configs: case folder -> words the check's failure must contain.
WRONG = {
    "09-zipkin-not-listed": ["to export to Zipkin as well", "zipkin is defined under exporters, but the "
                             "pipeline does not list it"],
    "09-jaeger-replaced": ["exporters: [zipkin, spanmetrics]: nothing goes to Jaeger",
                           "otlp/jaeger is still defined", "adding Zipkin does not replace Jaeger"],
    "09-zipkin-fixed-endpoint": ["zipkin to send to the check's Zipkin",
                                 "it sends to http://127.0.0.1:9411/api/v2/spans",
                                 "endpoint: ${env:TQ_ZIPKIN_ENDPOINT"],
    "09-connector-not-received": ["joined to both pipelines", "service.pipelines.traces exports to spanmetrics, but no "
                                  "metrics pipeline receives from it", "there is no metrics pipeline",
                                  "not used in any supported receiver pipeline",
                                  "receivers: [spanmetrics] and exporters: [prometheus]"],
    "09-connector-not-fed": ["joined to both pipelines", "service.pipelines.metrics receives from spanmetrics, "
                             "but no traces pipeline sends to it", "exporters: [otlp/jaeger, zipkin]",
                             "add spanmetrics to the traces pipeline's exporters"],
    "09-metrics-never-receive": ["a metrics pipeline that receives from the spanmetrics connector",
                                 "service.pipelines.metrics receives from [otlp]",
                                 "never receives any",
                                 "Write receivers: [spanmetrics] in service.pipelines.metrics"],
    "09-metrics-to-jaeger": ["service.pipelines.metrics to export to a prometheus exporter", "it exports to [otlp/jaeger]",
                             "stores traces, not metrics", "Define an exporter of type prometheus"],
    "09-metrics-fixed-port": ["prometheus to serve the metrics where the check's Prometheus scrapes",
                              "it serves them at 127.0.0.1:9464", "${env:TQ_SPANMETRICS_PORT:-9464}"],
    "09-default-flush-interval": ["metrics_flush_interval at most 10s",
                                  "no metrics_flush_interval: the connector's default is 60s",
                                  "write metrics_flush_interval: 5s under spanmetrics"],
    "09-counted-twice": ["counted 5 times in Prometheus", "counts 10 calls",
                         "fed by 2 pipelines (traces/jaeger, traces/zipkin)",
                         "Feed the connector from one pipeline only"],
    "09-zipkin-drops-internal": ["with as many spans as in Jaeger (3 in trace", "Zipkin holds 1 of its spans, "
                                 "Jaeger 3", "'read timetable' (INTERNAL)",
                                 "traces/zipkin, which also runs filter/server-only",
                                 "list otlp/jaeger and zipkin together in one traces pipeline"],
}
# The cases whose mistake only the running backends show; every other one fails on the file.
LIVE = {"09-counted-twice", "09-zipkin-drops-internal"}


def run_check(labs: Path, home: Path, **env) -> RunResults:
    return run_checks(labs, home, ["09"], **env)


# Collector 0.161's new names for the solution's component types; the old ones still load.
NEW_SPELLINGS = {r"\bspanmetrics\b": "span_metrics", r"\botlp/jaeger\b": "otlp_grpc/jaeger"}


def new_spellings_labs(into: Path) -> Path:
    """The reference solution written with the Collector's new type names."""
    target = into / FOLDER
    shutil.copytree(ROOT / "solutions" / FOLDER, target)
    text = (target / "collector.yaml").read_text()
    for old, new in NEW_SPELLINGS.items():
        text = re.sub(old, new, text)
    (target / "collector.yaml").write_text(text)
    return into


@pytest.fixture(scope="module")
def outcomes(collector_bin, zipkin_jar, prometheus_bin, tmp_path_factory):
    """Starter, solution and every wrong config: the live runs first, the quick ones beside them."""
    base = tmp_path_factory.mktemp("quest-09")
    with ThreadPoolExecutor(max_workers=3) as pool:
        runs = {"solution": pool.submit(run_check, ROOT / "solutions", base / "solution"),
                "new-spellings": pool.submit(run_check, new_spellings_labs(base / "new" / "labs"),
                                             base / "new" / "home")}
        for case in sorted(LIVE) + sorted(set(WRONG) - LIVE):
            runs[case] = pool.submit(run_check, overlay_labs(case, FOLDER, base / case / "labs"),
                                     base / case / "home")
        runs["starter"] = pool.submit(run_check, ROOT / "labs", base / "starter")
        yield {name: future.result() for name, future in runs.items()}


def test_the_quest_has_a_starter_a_solution_and_wrong_configs():
    quest = get_quest("09")
    assert quest.lab_folder == FOLDER and quest.check_file == "test_09_two_backends.py"
    lab, solution = ROOT / "labs" / FOLDER, ROOT / "solutions" / FOLDER
    assert (lab / "README.md").is_file() and (ROOT / "checks" / quest.check_file).is_file()
    for name in ("app.py", "telemetry.py"):   # the given service: the same on both sides
        assert (lab / name).read_text() == (solution / name).read_text(), name
    assert (lab / "collector.yaml").read_text() != (solution / "collector.yaml").read_text()
    assert {p.name for p in CASES.iterdir() if p.name.startswith("09-")} == set(WRONG)
    for case in WRONG:
        assert [p.name for p in (CASES / case).iterdir()] == ["collector.yaml"], case
    assert LIVE <= set(WRONG)


def test_check_fails_on_the_starter_with_the_first_hint(outcomes):
    text = failure_text(outcomes["starter"], "09")
    for words in STARTER:
        assert words in text, f"{words!r} not in:\n{text}"
    assert "Traceback" not in text


def test_check_passes_on_the_solution(outcomes):
    result = outcomes["solution"].quests["09"]
    assert result.passed, result.first_failure and result.first_failure.message


def test_check_passes_on_the_solution_in_the_collectors_new_spelling(outcomes, tmp_path):
    """span_metrics and otlp_grpc are the same components as spanmetrics and otlp to the check."""
    written = (new_spellings_labs(tmp_path) / FOLDER / "collector.yaml").read_text()
    assert "span_metrics" in written and "otlp_grpc/jaeger" in written and "spanmetrics" not in written
    result = outcomes["new-spellings"].quests["09"]
    assert result.passed, result.first_failure and result.first_failure.message


@pytest.mark.parametrize("case", sorted(WRONG))
def test_check_fails_on_a_wrong_config_with_its_hint(outcomes, case):
    text = failure_text(outcomes[case], "09")
    for words in WRONG[case]:
        assert words in text, f"{case}: {words!r} not in:\n{text}"
    assert "Traceback" not in text and "_pytest" not in text


def test_without_prometheus_the_check_says_how_to_install_it(collector_bin, zipkin_jar, tmp_path):
    """On a learner's machine without Prometheus: the install command, before anything starts."""
    results = run_check(ROOT / "solutions", tmp_path / "home", PROMETHEUS_BIN=str(tmp_path / "none"))
    text = failure_text(results, "09")
    assert "Prometheus: it scrapes the metrics your collector makes" in text, text
    assert "sudo apt-get install prometheus" in text, text
