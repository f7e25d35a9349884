"""The collector quests (06b, 07): their files, their parts, and the collector helpers.

Starter, solution and wrong-solution runs of these checks are in
tests/test_quests.py with every other quest's (they need the lab's Collector
and the real Jaeger, through the ``collector_bin`` fixture).
"""

from __future__ import annotations

import copy
from pathlib import Path

import yaml
from test_quests import NEEDS_JAEGER, WRONG, failure_text, run_checks

from tracequest.quests.collector_config import (JAEGER_ENDPOINT, CollectorConfig, compact_log_line,
                                                jaeger_exporter_fault, kind_of, validation_error)
from tracequest.quests.registry import get_quest, select

ROOT = Path(__file__).resolve().parent.parent
QUEST_IDS = sorted(NEEDS_JAEGER)


# --- no binary needed ---------------------------------------------------------

def test_collector_quests_have_a_starter_a_solution_and_wrong_solutions():
    for quest_id in QUEST_IDS:
        quest = get_quest(quest_id)
        lab, solution = ROOT / "labs" / quest.lab_folder, ROOT / "solutions" / quest.lab_folder
        assert (lab / "collector.yaml").is_file() and (solution / "collector.yaml").is_file()
        assert "make backends" in (lab / "README.md").read_text()
        assert {p.name for p in lab.glob("*.py")} == {p.name for p in solution.glob("*.py")}
        assert (ROOT / "checks" / quest.check_file).is_file()
        assert any(q == quest_id for q, _ in WRONG.values()), f"no wrong solution for {quest_id}"


def test_the_given_service_is_the_same_in_the_lab_and_the_solution():
    for name in ("app.py", "telemetry.py"):
        assert (ROOT / "labs/07-collector" / name).read_text() == \
            (ROOT / "solutions/07-collector" / name).read_text()


def test_check_06_picks_both_parts():
    assert [q.id for q in select(["06"])] == ["06a", "06b"]
    assert [q.id for q in select(["6b"])] == ["06b"]
    assert get_quest("06b").check_file == get_quest("06a").check_file == "test_06_sampling.py"
    assert get_quest("07").check_file == "test_07_collector.py"


def test_without_the_binary_the_checks_say_how_to_build_it(tmp_path):
    results = run_checks(ROOT / "solutions", tmp_path / "home", QUEST_IDS,
                         JAEGER_BIN=str(tmp_path / "no-such-jaeger"))
    for quest_id in QUEST_IDS:
        text = failure_text(results, quest_id)
        assert "the real Jaeger binary" in text and "make backends" in text, text
        assert "Traceback" not in text


def test_reading_a_collector_config(tmp_path):
    path = tmp_path / "collector.yaml"
    path.write_text((ROOT / "solutions/07-collector/collector.yaml").read_text())
    config = CollectorConfig.read(path)
    (pipeline,) = config.trace_pipelines()
    assert pipeline.processors == ["memory_limiter", "attributes/pii", "batch"]
    assert pipeline.processors_of_kind("attributes") == ["attributes/pii"]
    assert list(config.defined("exporters", "otlp")) == ["otlp/jaeger"]
    assert kind_of("otlp/jaeger") == "otlp"
    # Collector 0.161's new spellings are the same kinds to a check.
    assert [kind_of(n) for n in ("otlp_grpc/jaeger", "otlp_http", "span_metrics", "load_balancing/x")] == \
        ["otlp", "otlphttp", "spanmetrics", "loadbalancing"]
    endpoint = config.section("exporters")["otlp/jaeger"]["endpoint"]
    assert config.resolve(endpoint, {}) == "127.0.0.1:4327"
    assert config.resolve(endpoint, {"TQ_JAEGER_OTLP_ENDPOINT": "127.0.0.1:9"}) == "127.0.0.1:9"


def test_an_exporter_to_jaeger_is_judged_by_its_endpoint_and_tls(tmp_path):
    """Checks 07 and 09 share this verdict: the check's Jaeger is where the variable says, in plain gRPC."""
    solution = yaml.safe_load((ROOT / "solutions/07-collector/collector.yaml").read_text())

    def fault(**settings):
        config = copy.deepcopy(solution)
        config["exporters"]["otlp/jaeger"] = settings
        path = tmp_path / "collector.yaml"
        path.write_text(yaml.safe_dump(config))
        return jaeger_exporter_fault(CollectorConfig.read(path), "otlp/jaeger")

    assert fault(endpoint=JAEGER_ENDPOINT, tls={"insecure": True}) is None
    fixed = fault(endpoint="127.0.0.1:4317", tls={"insecure": True})
    assert "otlp/jaeger sends to 127.0.0.1:4317" in fixed and f"write endpoint: {JAEGER_ENDPOINT}" in fixed
    assert "sends to no endpoint" in fault(tls={"insecure": True})
    assert "tries to speak TLS" in fault(endpoint=JAEGER_ENDPOINT)


def test_the_collectors_words_come_back_in_one_line():
    output = ("2026/01/02 03:04:05 application version: git-version=v2.13.0\n"
              "Error: failed to get config: cannot unmarshal the configuration: decoding failed "
              "due to the following error(s):\n\n'processors' error reading configuration for "
              "\"batch\": decoding failed due to the following error(s):\n\n'timeout' invalid "
              "duration\n2026/01/02 03:04:05 failed to get config: ...\n")
    assert validation_error(output) == ("failed to get config: cannot unmarshal the configuration: "
                                        "'processors' error reading configuration for \"batch\": "
                                        "'timeout' invalid duration")
    line = ('2026-01-02T03:04:05.678Z\tinfo\tTraces\t{"resource": {"service.name": "jaeger"}, '
            '"otelcol.component.id": "debug", "otelcol.component.kind": "exporter", "spans": 2}')
    assert compact_log_line(line) == "03:04:05 info debug: Traces (spans=2)"
