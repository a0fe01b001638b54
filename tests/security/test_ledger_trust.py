"""Issue 11, hole 5: `ops soak report` trusts nothing in its ledger.

Lines a crash, a full disk or a hand edit leave behind (truncated JSON, a missing key, a huge
number, NaN) are skipped and counted, never a traceback; every ledger field is escaped.
"""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from verify.opsrun import ops

HEADER = {"type": "header", "format": "opsverify-soak/1", "name": "hostile",
          "created": "2026-02-08T00:00:00+00:00", "every_s": 300, "for_s": 600,
          "expected_runs": 2, "flags": ["--family", "mounts"], "ssot": "ssot", "may_restart": []}
INJECT = "<script>alert(1)</script><img src=x onerror=alert(2)>"


def run(k: int, **change: Any) -> dict[str, Any]:
    line = {"type": "run", "k": k, "started": "2026-02-08T00:00:00+00:00",
            "finished": "2026-02-08T00:00:02+00:00", "duration_s": 2.0, "exit_code": 1,
            "error": None, "counts": {"pass": 1, "fail": 1}, "relaxations": [],
            "unreachable": {}, "containers": {"vm210": {"jellyfin": {
                "id": "a1", "state": "running", "health": "healthy", "restart_count": 0,
                "started_at": "2026-02-08T00:00:00Z"}}},
            "tests": {"gates/test_mounts.py::test_mount[vm210:/mnt/media]":
                      ["mounts", "vm210", "pass", 0.1, None]}}
    line.update(change)
    return line


BAD_LINES = [
    '{"type": "run", "k": 3, "started": "2026-02-08T00:0',            # truncated JSON
    json.dumps({k: v for k, v in run(4).items() if k != "tests"}),     # a missing key
    json.dumps(run(5)).replace('"duration_s": 2.0', '"duration_s": 1e999'),   # inf
    json.dumps(run(6)).replace('"k": 6', '"k": 1' + "0" * 400),        # a huge integer
    json.dumps(run(7)).replace('"duration_s": 2.0', '"duration_s": NaN'),     # NaN
    json.dumps(run(8, counts={"pass": "1"})),                           # a wrong type
    json.dumps(run(9, started="yesterday")),                            # not a time
]


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.add(tag)
        self.tags |= {f"@{name}" for name, _ in attrs if name.startswith("on")}


OWN_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "h4", "span",
            "svg", "defs", "pattern", "rect", "polyline", "text", "table", "tr", "th", "td",
            "ul", "li", "p", "div", "details", "summary", "strong", "br"}


def test_a_hostile_ledger_is_reported_not_a_traceback(tmp_path: Path) -> None:
    hostile = run(2, error=None, counts={"pass": 1, INJECT: 1}, relaxations=[INJECT],
                  unreachable={"host:vm209": INJECT},
                  tests={INJECT: [INJECT, INJECT, "fail", 0.1, INJECT]},
                  containers={INJECT: {INJECT: {"id": INJECT, "state": INJECT,
                                                "health": INJECT, "restart_count": 1,
                                                "started_at": INJECT}}})
    lines = [json.dumps(HEADER), json.dumps(run(1)), *BAD_LINES, json.dumps(hostile)]
    (tmp_path / "hostile.jsonl").write_text("\n".join(lines) + "\n")
    html = tmp_path / "r.html"
    p = ops("soak", "report", "hostile", "--dir", tmp_path, "--html", html)
    assert "Traceback" not in p.stderr + p.stdout, p.stderr
    assert p.returncode == 1, p.stdout + p.stderr  # run 2 failed: a FAIL, the lines counted
    assert "7 unreadable ledger lines (skipped)" in p.stdout
    page = html.read_text()
    assert "7 unreadable ledger lines (skipped)" in page
    tags = Tags()
    tags.feed(page)
    assert tags.tags <= OWN_TAGS, tags.tags - OWN_TAGS
    assert "&lt;script&gt;" in page


def test_every_ledger_field_is_escaped(tmp_path: Path) -> None:
    """Well-formed lines only: what a hostile host or message puts in them is text."""
    lines = [json.dumps(HEADER), json.dumps(run(1)),
             json.dumps(run(2, counts={"pass": 1, INJECT: 1}))]
    (tmp_path / "hostile.jsonl").write_text("\n".join(lines) + "\n")
    html = tmp_path / "r.html"
    ops("soak", "report", "hostile", "--dir", tmp_path, "--html", html)
    tags = Tags()
    tags.feed(html.read_text())
    assert tags.tags <= OWN_TAGS, tags.tags - OWN_TAGS


def test_only_unreadable_lines_make_a_soak_incomplete_not_pass(tmp_path: Path) -> None:
    lines = [json.dumps(HEADER), json.dumps(run(1, exit_code=0)), BAD_LINES[0],
             json.dumps(run(2, exit_code=0))]
    (tmp_path / "hostile.jsonl").write_text("\n".join(lines) + "\n")
    p = ops("soak", "report", "hostile", "--dir", tmp_path, "--html", tmp_path / "r.html")
    assert p.returncode == 3, p.stdout + p.stderr
    assert "INCOMPLETE" in p.stdout and "1 unreadable ledger line (skipped)" in p.stdout


@pytest.mark.parametrize("field, value, message", [
    ("expected_runs", float("nan"), "expected_runs is not a whole number of runs"),
    ("every_s", 1e999, "every_s is not a number of seconds"),
    ("flags", "--family mounts", "flags is not a list of strings"),
    ("name", None, "name is not a string"),
])
def test_a_bad_header_is_named_with_its_line(tmp_path: Path, field: str, value: Any,
                                             message: str) -> None:
    path = tmp_path / "hostile.jsonl"
    path.write_text(json.dumps({**HEADER, field: value}) + "\n" + json.dumps(run(1)) + "\n")
    p = ops("soak", "report", "hostile", "--dir", tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert f"{path}:1: header: {message}" in p.stderr
