"""Prometheus facts: targets and PromQL rules, against a real Prometheus and scripted answers."""

from __future__ import annotations

import copy
import json
import math
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from api_servers import Answer, json_values, loopback_client, sample, scripted
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from opsverify.facts import api_prometheus as prom
from opsverify.facts.api_client import decode_json
from opsverify.settings import Settings
from opsverify.ssot import Ssot, load
from opsverify.ssot.model import Rule
from opsverify.verdict import Unreachable

ORIGIN = "http://192.168.1.184:9090"


def _ssot(rules: list[Rule] | None = None) -> Ssot:
    s = copy.copy(load())  # load() hands out one shared Ssot per content: never change it
    if rules is not None:
        s.__dict__["rules"] = rules  # the SSOT's own rule names an address only the twin has
    return s


def _collect(ssot: Ssot, url: str, timeout: float = 2) -> dict[str, Any]:
    settings = Settings(timeout=timeout)
    with loopback_client(settings, {ORIGIN: url}) as client:
        return prom.collect(ssot, settings, client)


def _rule(name: str, query: str) -> Rule:
    return Rule(name, query, "<", 1.0)


# --- a real Prometheus scraping a real node-exporter, both on 127.0.0.1 -----------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binaries = shutil.which("prometheus"), shutil.which("prometheus-node-exporter")
    if not all(binaries):
        pytest.skip("prometheus and prometheus-node-exporter are not installed")
    tmp = tmp_path_factory.mktemp("prometheus")
    web, node = _free_port(), _free_port()
    (tmp / "prometheus.yml").write_text(json.dumps({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {"job_name": "prometheus", "static_configs": [{"targets": [f"127.0.0.1:{web}"]}]},
            {"job_name": "node", "static_configs": [{"targets": [f"127.0.0.1:{node}"]}]},
            {"job_name": "gone", "static_configs": [{"targets": [f"127.0.0.1:{_free_port()}"]}]},
        ]}))
    procs = [
        subprocess.Popen([binaries[1], f"--web.listen-address=127.0.0.1:{node}",
                          "--collector.disable-defaults", "--collector.loadavg",
                          "--collector.cpu"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen([binaries[0], f"--config.file={tmp / 'prometheus.yml'}",
                          f"--storage.tsdb.path={tmp / 'data'}",
                          f"--web.listen-address=127.0.0.1:{web}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]
    url = f"http://127.0.0.1:{web}"
    try:
        ssot = _ssot([])
        for _ in range(150):  # until all three targets were scraped once
            time.sleep(0.2)
            try:
                targets = _collect(ssot, url)["targets"]
            except Unreachable:
                continue
            if len(targets) == 3 and all(t["health"] != "unknown" for t in targets):
                break
        else:
            pytest.fail("Prometheus did not scrape its targets within 30 s")
        yield url
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)


def test_real_prometheus_targets(prometheus: str) -> None:
    facts = _collect(_ssot([]), prometheus)
    by_job = {t["job"]: t for t in facts["targets"]}
    port = prometheus.rsplit(":", 1)[1]
    assert by_job["prometheus"] == {"job": "prometheus", "instance": f"127.0.0.1:{port}",
                                    "health": "up", "scrape_url": f"{prometheus}/metrics",
                                    "last_error": None}
    assert by_job["node"]["health"] == "up"
    assert by_job["gone"]["health"] == "down" and "connection refused" in by_job["gone"][
        "last_error"]


def test_real_prometheus_rules(prometheus: str) -> None:
    rules = [_rule("up", 'up{job="node"}'), _rule("scalar", "scalar(sum(up))"),
             _rule("range", 'up{job="node"}[5s]'), _rule("nan", "0/0"), _rule("inf", "1/0"),
             _rule("empty", 'up{instance="192.168.1.210:9100"}'),
             _rule("broken", "rate(up[1m]"), _rule("string", '"text"'),
             _rule("ssot", load().rules[0].query)]
    facts = _collect(_ssot(rules), prometheus)["rules"]
    assert facts["up"] == {"ok": True, "error": None, "values": [1.0]}
    assert facts["scalar"]["values"] == [2.0]
    assert facts["range"]["ok"] and set(facts["range"]["values"]) == {1.0}
    assert math.isnan(facts["nan"]["values"][0]) and facts["inf"]["values"] == [math.inf]
    assert facts["empty"] == {"ok": True, "error": None, "values": []}
    assert facts["broken"]["ok"] is False and facts["broken"]["error"].startswith("bad_data: ")
    assert facts["string"]["ok"] is False
    assert facts["ssot"] == {"ok": True, "error": None, "values": []}  # 192.168.1.210: twin only


# --- scripted answers: the documented samples, errors and faults -----------------------------


def test_documented_samples() -> None:
    ssot = _ssot([_rule("up", "up")])

    def script(seen: Any) -> Answer:
        if seen.path == "/api/v1/targets":
            assert seen.query == {"state": "active"}
            return Answer(200, sample("prometheus_api_v1_targets_state_active.json"))
        return Answer(200, sample("prometheus_api_v1_query_vector.json"))

    with scripted(script) as srv:
        facts = _collect(ssot, srv.url)
    assert facts == {
        "targets": [{"job": "prometheus", "instance": "127.0.0.1:9090", "health": "up",
                     "scrape_url": "http://127.0.0.1:9090/metrics", "last_error": None}],
        "rules": {"up": {"ok": True, "error": None, "values": [1.0, 0.0]}}}


def test_query_error_fails_that_rule_only() -> None:
    ssot = _ssot([_rule("good", "up"), _rule("bad", "up{")])

    def script(seen: Any) -> Answer:
        if seen.path == "/api/v1/targets":
            return Answer(200, sample("prometheus_api_v1_targets.json"))
        if seen.query["query"] == "up{":
            return Answer(400, {"status": "error", "errorType": "bad_data",
                                "error": "1:4: parse error: unexpected end of input"})
        return Answer(200, {"status": "success", "data": {
            "resultType": "vector", "result": [{"metric": {}, "value": [1.5, "+Inf"]},
                                               {"metric": {}, "value": [1.5, "-Inf"]}]}})

    with scripted(script) as srv:
        rules = _collect(ssot, srv.url)["rules"]
    assert rules["good"] == {"ok": True, "error": None, "values": [math.inf, -math.inf]}
    assert rules["bad"] == {"ok": False, "values": [],
                            "error": "bad_data: 1:4: parse error: unexpected end of input"}


@pytest.mark.parametrize(("answer", "reason"), [
    (Answer(500, b"internal"), "HTTP 500 Internal Server Error"),
    (Answer(200, b"<html>not prometheus</html>"), "HTTP 200 but invalid JSON"),
    (Answer(200, {"status": "success", "data": {"activeTargets": "x"}}),
     "unexpected response: activeTargets is not a list"),
    (Answer(hang=True), "timed out after 1 s (no answer)"),
])
def test_source_faults_are_unreachable(answer: Answer, reason: str) -> None:
    start = time.monotonic()
    with scripted(lambda seen: answer) as srv, pytest.raises(Unreachable) as info:
        _collect(_ssot(), srv.url, timeout=1)
    print(f"\nprometheus {reason!r}: Unreachable after {time.monotonic() - start:.2f} s")
    assert info.value.target == "prometheus" and reason in info.value.reason
    assert info.value.reason.startswith("GET http://192.168.1.184:9090/api/v1/targets")


def test_query_answering_garbage_makes_the_source_unreachable() -> None:
    def script(seen: Any) -> Answer:
        if seen.path == "/api/v1/targets":
            return Answer(200, sample("prometheus_api_v1_targets.json"))
        return Answer(200, {"status": "success", "data": {"resultType": "vector",
                                                          "result": [{"value": [1, "high"]}]}})

    with scripted(script) as srv, pytest.raises(Unreachable) as info:
        _collect(_ssot(), srv.url)
    assert "(streaming-io-isolation): unexpected response: sample value 'high'" \
        in info.value.reason


# --- hostile input ----------------------------------------------------------------------------

JSON = json_values(("status", "data", "result", "resultType", "value", "values", "labels"))
VALUE = st.lists(st.floats() | st.text(max_size=6) | JSON, max_size=3)
SHAPED = st.fixed_dictionaries({
    "status": st.sampled_from(["success", "error"]) | JSON,
    "data": st.fixed_dictionaries({
        "resultType": st.sampled_from(["vector", "scalar", "matrix", "string"]) | JSON,
        "result": st.lists(st.fixed_dictionaries({}, optional={
            "value": VALUE, "values": st.lists(VALUE, max_size=3), "metric": JSON}),
            max_size=3) | VALUE,
        "activeTargets": st.lists(st.dictionaries(st.sampled_from(
            ["labels", "health", "scrapeUrl", "lastError"]), JSON), max_size=3) | JSON}) | JSON},
    optional={"error": JSON, "errorType": JSON})


@hsettings(max_examples=200)
@given(SHAPED | JSON)
def test_parsers_raise_only_value_error(payload: Any) -> None:
    for parse in (prom.parse_targets, prom.parse_query):
        try:
            parse(payload)
        except ValueError:
            pass


@given(st.sampled_from(["prometheus_api_v1_query_vector.json", "prometheus_api_v1_targets.json",
                        "prometheus_api_v1_targets_state_active.json"]), st.data())
def test_truncated_samples_raise_only_value_error(name: str, data: st.DataObject) -> None:
    raw = json.dumps(sample(name)).encode()
    try:
        payload = decode_json(raw[: data.draw(st.integers(0, len(raw)))])
        prom.parse_query(payload) if "query" in name else prom.parse_targets(payload)
    except ValueError:
        pass
