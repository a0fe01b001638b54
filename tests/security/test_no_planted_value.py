"""Issue 11, the property: no value planted under a secret-named key reaches any output.

Hypothesis generates config documents with secret-named keys (real ones) at random depths,
secret values of arbitrary characters (each holding a unique core the outputs are searched
for), and SSOT key paths with `*`. The host's real readers (JSON, YAML, XML, and a probe's
JSON answer) read them; what they return is what a gate sees. Then `ops verify` and `ops soak`
run on those facts, as a person runs them, and every output is searched: the terminal, HTML,
JUnit, JSON, the Prometheus textfile, the saved facts, the soak ledger and its report.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from verify.opsrun import SSOT, facts_dir, ops

from opsverify.facts import api_http
from opsverify.facts.agent import configs

# Real key names (tests/security/test_secret_keys.py checks the rule on all of them).
PLAIN = ["hostname", "port", "baseUrl", "name", "url", "enabled", "id", "tags", "main",
         "radarr", "settings", "options", "JellyfinUrl", "Port", "agents", "email"]
SECRET = ["apiKey", "ApiKey", "api_key", "nzb_key", "password", "authPass", "token", "PlexToken",
          "vapidPrivate", "webhookUrl", "Discord", "sessionSecret", "salt", "cookie",
          "credentials", "claimToken", "pwd", "botAPI", "SslCertPassword"]
KEY = st.sampled_from(PLAIN + SECRET)
SCALAR = st.one_of(st.integers(-5, 70000), st.booleans(), st.none(),
                   st.text("abcdefghij0123456789:/.-", max_size=12))
NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class Plant:
    """Secret values, each around a core that appears nowhere else: PLANT<n>Z<run id>."""

    def __init__(self, run_id: int):
        self.run_id = run_id
        self.cores: list[str] = []

    def value(self, noise: tuple[str, str]) -> str:
        core = f"PLANT{len(self.cores)}Z{self.run_id:08x}"
        self.cores.append(core)
        return noise[0] + core + noise[1]


NOISE = st.tuples(st.text(max_size=6), st.text(max_size=6))  # any characters at all


@st.composite
def node(draw: Any, plant: Plant, depth: int, secret: bool) -> Any:
    """A config value; below a secret-named key every leaf is a planted secret."""
    kind = draw(st.sampled_from(["leaf", "dict", "list"] if depth < 4 else ["leaf"]))
    if kind == "leaf":
        return plant.value(draw(NOISE)) if secret else draw(SCALAR)
    if kind == "list":
        return [draw(node(plant, depth + 1, secret)) for _ in range(draw(st.integers(0, 3)))]
    keys = draw(st.lists(KEY, min_size=1, max_size=4, unique=True))
    return {k: draw(node(plant, depth + 1, secret or k in SECRET)) for k in keys}


@st.composite
def case(draw: Any) -> tuple[dict, list[str], Plant]:
    plant = Plant(draw(st.integers(0, 2**32 - 1)))
    doc = {k: draw(node(plant, 1, k in SECRET))
           for k in draw(st.lists(KEY, min_size=1, max_size=5, unique=True))}
    segment = st.sampled_from(["*", "*", "*", "0", *PLAIN])  # paths name no secret: they read
    paths = draw(st.lists(st.lists(segment, min_size=1, max_size=5).map(".".join),
                          min_size=1, max_size=4, unique=True))
    return doc, paths, plant


def _xml(tag: str, value: Any) -> list[ET.Element]:
    """value as elements named tag (a list repeats the element), text XML 1.0 can hold."""
    if isinstance(value, list):
        return [e for v in value for e in _xml(tag, v)]
    el = ET.Element(tag)
    if isinstance(value, dict):
        for k, v in value.items():
            el.extend(_xml(k, v))
    elif value is not None:
        el.text = NOT_XML.sub("?", str(value))
    return [el]


def confirmed_case() -> tuple[dict, list[str], Plant]:
    """The case the review confirmed: `radarr.*.*` over a settings.json holding an apiKey."""
    plant = Plant(0x5EED)
    doc = {"radarr": [{"hostname": "100.107.36.76", "port": 7878,
                       "apiKey": plant.value(("\x1b[31m", "\t\n"))}],
           "main": {"token": plant.value(("", "é\u202e"))}}
    return doc, ["radarr.*.*", "*.*"], plant


def read_everywhere(doc: dict, paths: list[str], tmp: Path) -> list[Any]:
    """Every value the host's readers and the probe reader return for these paths."""
    files = {"json": json.dumps(doc), "yaml": yaml.safe_dump(doc, width=float("inf")),
             "xml": ET.tostring(_xml("Config", doc)[0], encoding="unicode")}
    found: list[Any] = []
    for fmt, text in files.items():
        path = tmp / f"config.{fmt}"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        keys = [f"*.{p}" for p in paths] if fmt == "xml" else paths
        got = configs.config_values({"name": "c", "file": str(path), "format": fmt, "keys": keys})
        assert got["ok"] or fmt == "yaml", got  # the YAML subset may refuse PyYAML's output
        found += [v for values in got["values"].values() for v in values]
    answer = api_http.body_facts(json.dumps(doc).encode(),
                                 {"status": 200, "json": dict.fromkeys(paths, "x")})
    return found + list(answer["json"].values())


def leaks(text: str, plant: Plant) -> list[str]:
    return [core for core in plant.cores if core in text]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case())
def test_no_reader_returns_a_planted_value(tmp_path_factory: Any, example: tuple) -> None:
    doc, paths, plant = example
    found = read_everywhere(doc, paths, tmp_path_factory.mktemp("c"))
    shown = json.dumps(found) + json.dumps(found, ensure_ascii=False)
    assert not leaks(shown, plant), (paths, found)


def _plant_into(facts: dict, found: list[Any]) -> None:
    """What the readers returned, where the gates read it: a wiring check and a probe."""
    check = next(c for c in SSOT.config_checks if c.format == "json")
    entry = facts[f"host:{check.host}"]["config"][check.name]
    entry["values"] = {key: found or ["nothing"] for key in check.keys}
    facts["http"]["probes"]["radarr"]["json"] = {"appName": found}


@settings(max_examples=4, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(case())
@example(confirmed_case())
def test_no_output_holds_a_planted_value(tmp_path_factory: Any, example: tuple) -> None:
    doc, paths, plant = example
    tmp = tmp_path_factory.mktemp("run")
    found = read_everywhere(doc, paths, tmp)
    facts = facts_dir(tmp / "facts", lambda f: _plant_into(f, found))
    out = tmp / "out"
    verify = ops("verify", "--facts", facts, "-v", "--html", out / "r.html", "--junit-xml",
                 out / "r.xml", "--json", out / "r.json", "--prom", out / "r.prom",
                 "--save-facts", out / "saved")
    assert verify.returncode == 1, verify.stdout + verify.stderr  # the planted values: FAIL
    soak = ops("soak", "--facts", facts, "--every", "1s", "--for", "1s", "--name", "p",
               "--dir", out / "soak")
    report = ops("soak", "report", "p", "--dir", out / "soak", "--html", out / "soak.html")
    texts = {"terminal": "".join(p.stdout + p.stderr for p in (verify, soak, report))}
    texts |= {str(p.relative_to(out)): p.read_text(errors="surrogateescape")
              for p in out.rglob("*") if p.is_file()}
    assert {"r.html", "r.xml", "r.json", "r.prom", "soak/p.jsonl", "soak.html"} <= set(texts)
    assert any(name.startswith("saved/") for name in texts)
    found_leaks = {name: leaks(text, plant) for name, text in texts.items()}
    assert not any(found_leaks.values()), found_leaks
