"""Issue 11, hole 4: control characters a host writes reach no output raw; JUnit stays XML 1.0.

A file on a host is named with terminal escape sequences (a window-title OSC ended by BEL, a
clear-screen CSI, a C1 CSI, a right-to-left override) and holds a retired address. The real
fact script finds it; `ops verify` (a child process, as a person runs it) reports it.
"""

from __future__ import annotations

import json
import re
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from verify.opsrun import SSOT, facts_dir, ops

from opsverify import results
from opsverify.facts.agent import main as agent_main
from opsverify.outputs import junit, prometheus, terminal

EVIL = "evil\x1b]0;pwned\x07\x1b[2J\x9b31m\u202etxt.conf"
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# XML 1.0: Char ::= #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]
NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def scanned(root: Path) -> list[dict]:
    """The stale_refs the real fact script reports for a config root holding EVIL."""
    (root / EVIL).write_text("upstream = http://100.117.1.53:7878\n")
    params = {"host": "vm209", "budget_s": 5, "retired": ["100.117.1.53"],
              "config_roots": [str(root)], "files": {"docker_socket": str(root / "none")}}
    facts = agent_main.collect(params, time.monotonic())
    refs = facts["stale_refs"]
    assert [Path(r["file"]).name for r in refs] == [EVIL]
    return refs


def test_a_host_file_name_with_escape_sequences_reaches_no_output_raw(tmp_path: Path) -> None:
    root = tmp_path / "docker"
    root.mkdir()
    refs = scanned(root)
    assert "vm209" in SSOT.active_hosts

    def plant(f: dict) -> None:
        f["host:vm209"]["stale_refs"] = refs

    facts = facts_dir(tmp_path / "facts", plant)
    out = tmp_path / "out"
    p = ops("verify", "--facts", facts, "-v", "--family", "stale_refs", "--json", out / "r.json",
            "--junit-xml", out / "r.xml", "--html", out / "r.html", "--prom", out / "r.prom")
    assert p.returncode == 1, p.stdout + p.stderr
    terminal = p.stdout + p.stderr
    assert "evil\\x1b]0;pwned\\x07\\x1b[2J\\x9b31m\\u202etxt.conf" in terminal
    assert not RAW.search(terminal), "a control character reached the terminal raw"
    junit = (out / "r.xml").read_text(encoding="utf-8")
    assert not NOT_XML.search(junit) and not RAW.search(junit.replace("\t", ""))
    root_el = ET.parse(out / "r.xml").getroot()  # expat: refuses anything not XML 1.0
    failures = [f.get("message", "") for f in root_el.iter("failure")]
    assert any("evil\\x1b]0;pwned" in m for m in failures), failures
    for name in ("r.json", "r.html", "r.prom"):
        text = (out / name).read_text(encoding="utf-8")
        assert not RAW.search(text.replace("\t", "").replace("\n", "").replace("\r", "")), name
    message = next(t["message"] for t in json.loads((out / "r.json").read_text())["tests"]
                   if t["outcome"] == "fail")
    assert "\\x1b]0;pwned\\x07" in message


def test_junit_is_xml_1_0_whatever_the_text() -> None:
    """Every code point a host could send, in every field JUnit shows."""
    every = "".join(chr(c) for c in range(0x250)) + "\ud800\udfff\ufffe\uffff\u202e"
    test = {"id": "gates/test_x.py::test_a[" + every + "]", "name": "test_a[" + every + "]",
            "param": every, "family": "x" + every, "host": "h", "outcome": "fail",
            "message": every, "source": every, "duration_s": 0.1, "evidence": {}}
    res = {"format": results.FORMAT, "ssot": every, "started": "2026-02-11T12:00:00+00:00",
           "finished": "2026-02-11T12:00:01+00:00", "duration_s": 1.0, "exit_code": 1,
           "relaxations": [every], "hosts": ["h"], "families": ["x" + every],
           "unreachable": {}, "remote_commands": [], "counts": results.count([test]),
           "tests": [test, {**test, "outcome": "unreachable"}, {**test, "outcome": "error"}]}
    text = junit.junit_xml(res)
    assert not NOT_XML.search(text)
    ET.fromstring(text.encode("utf-8"))
    for line in terminal.detail_lines(res) + [results.one_line(every)]:
        assert not RAW.search(line) and not NOT_XML.search(line)
    assert not RAW.search(prometheus.prometheus_text(res, now=0, code=1).replace("\n", ""))
