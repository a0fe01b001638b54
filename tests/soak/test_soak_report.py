"""The soak report: verdict rules, restart counting, flapping, and a page that opens anywhere."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from opsrun import chromium

from opsverify.redact import register
from opsverify.soak import analysis, report

T0 = "2026-02-08T14:00:00+00:00"


def box(started: str = "2026-02-08T13:00:00.000000000Z", count: int = 0, cid: str = "a1",
        state: str = "running", health: str | None = "healthy") -> dict[str, Any]:
    return {"id": cid, "state": state, "health": health, "restart_count": count,
            "started_at": started}


def run(k: int, outcomes: dict[str, str], boxes: dict[str, dict] | None = None,
        unreachable: dict[str, str] | None = None) -> dict[str, Any]:
    tests = {tid: ["mounts", "vm210", o, 0.01, None if o == "pass" else f"{tid} is {o}"]
             for tid, o in outcomes.items()}
    return {"k": k, "started": T0, "finished": "2026-02-08T14:00:02+00:00", "duration_s": k / 10,
            "exit_code": 1 if "fail" in outcomes.values() else 0, "error": None,
            "counts": {"pass": 1}, "unreachable": unreachable or {}, "tests": tests,
            "containers": {"vm210": boxes or {}}}


def header(expected: int, may_restart: list[str] | None = None) -> dict[str, Any]:
    return {"name": "t", "every_s": 300, "for_s": 300 * expected, "expected_runs": expected,
            "flags": ["--family", "mounts"], "ssot": "ssot", "may_restart": may_restart or []}


def test_all_passed_and_complete_is_pass() -> None:
    s = analysis.analyse(header(3), [run(k, {"a": "pass"}, {"jellyfin": box()}) for k in (1, 2, 3)])
    assert s.verdict() == (analysis.PASS, [])


def test_fewer_runs_than_the_window_is_incomplete() -> None:
    s = analysis.analyse(header(5), [run(k, {"a": "pass"}) for k in (1, 2)])
    assert s.verdict() == (analysis.INCOMPLETE, ["2 of 5 runs done"])


def test_restarts_counted_from_start_time_count_and_id() -> None:
    seq = [box(), box(), box(started="2026-02-08T14:10:00Z"),              # docker restart
           box(started="2026-02-08T14:10:00Z", count=2),                  # policy restarts x2
           box(started="2026-02-08T14:20:00Z", count=0, cid="b2"),        # recreated
           box(started="2026-02-08T14:20:00Z", count=0, cid="b2")]
    s = analysis.analyse(header(6), [run(k, {"a": "pass"}, {"jellyfin": b})
                                   for k, b in enumerate(seq, 1)])
    b = s.boxes[("vm210", "jellyfin")]
    assert (b.restarts, b.restart_runs) == (4, [3, 4, 5])
    assert s.verdict() == (analysis.FAIL, ["vm210/jellyfin restarted 4x (runs 3, 4, 5)"])
    allowed = analysis.analyse(header(6, ["vm210/jellyfin"]), [
        run(k, {"a": "pass"}, {"jellyfin": b}) for k, b in enumerate(seq, 1)])
    assert allowed.verdict() == (analysis.PASS, [])


def test_a_stopped_container_is_not_a_restart() -> None:
    seq = [box(state="exited", health=None), box(state="exited", health=None)]
    s = analysis.analyse(header(2), [run(k, {"a": "pass"}, {"tdarr": b})
                                   for k, b in enumerate(seq, 1)])
    assert s.boxes[("vm210", "tdarr")].restarts == 0 and s.verdict()[0] == analysis.PASS


def test_flapping_and_first_last_failure() -> None:
    pattern = ["pass", "fail", "pass", "pass", "fail", "fail", "pass", "fail"]
    s = analysis.analyse(header(8), [run(k, {"flappy": o, "steady": "pass"})
                                   for k, o in enumerate(pattern, 1)])
    g = s.gates["flappy"]
    assert g.flaps == 2 and g.bad_runs == 4  # the last failure has not recovered: no third flap
    assert (g.first_bad[0], g.last_bad[0], g.last_bad[2]) == (2, 8, "flappy is fail")
    assert s.gates["steady"].flaps == 0
    assert s.verdict() == (analysis.FAIL, ["1 gate did not pass in 4 of 8 runs"])


def test_an_unreachable_stretch_is_not_a_flap() -> None:
    pattern = ["pass", "unreachable", "pass", "fail", "unreachable", "pass"]
    s = analysis.analyse(header(6), [run(k, {"a": o}) for k, o in enumerate(pattern, 1)])
    assert s.gates["a"].flaps == 1 and s.gates["a"].bad_runs == 3


def test_a_gate_that_appears_later_is_padded() -> None:
    s = analysis.analyse(header(3), [run(1, {"a": "pass"}), run(2, {"a": "pass", "b": "pass"}),
                                   run(3, {"b": "pass"})])
    assert list(s.gates["a"].codes) == [analysis.OK, analysis.OK, analysis.ABSENT]
    assert list(s.gates["b"].codes) == [analysis.ABSENT, analysis.OK, analysis.OK]


def test_page_is_self_contained_and_scrubbed(tmp_path: Path) -> None:
    register("report-canary-5e6f7a")
    runs = [run(k, {"a": "fail" if k == 2 else "pass"}, {"jellyfin": box()},
                {"host:vm210": "ssh: report-canary-5e6f7a"} if k == 3 else None)
            for k in range(1, 6)]
    html = report.render(analysis.analyse(header(5), runs))
    assert "report-canary-5e6f7a" not in html and "ssh: ********" in html
    assert "<script" not in html and "<link" not in html and "@import" not in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(?!#)""", html)
    assert set(re.findall(r"url\(([^)]*)\)", html)) <= {"#cells5"}
    page = tmp_path / "soak.html"
    page.write_text(html)
    dom, console = chromium(page)
    assert console == [], console
    assert '<span class="verdict FAIL">FAIL</span>' in dom and "<svg" in dom


def test_verify_html_report_opens_without_console_errors(tmp_path: Path) -> None:
    from opsrun import facts_dir, mount, ops

    f = facts_dir(tmp_path / "facts", lambda f: mount(f, "vm210", "/mnt/media")["options"]
                  .__setitem__(0, "rw"))
    ops("verify", "--facts", f, "--family", "mounts", "--html", tmp_path / "r.html")
    dom, console = chromium(tmp_path / "r.html")
    assert console == [], console
    assert dom.count('<tr data-host=') == 4 and '<td class="o fail">FAIL</td>' in dom
    assert "every gate shown" in dom
    # A grid cell's link (what a click sets) shows only that pair's gates, the others hidden.
    dom, console = chromium(tmp_path / "r.html", "host=vm209&family=mounts")
    assert console == [], console
    shown = re.findall(r'<tr data-host="(\w+)" data-family="mounts"(?! hidden)', dom)
    hidden = re.findall(r'<tr data-host="(\w+)" data-family="mounts" hidden', dom)
    assert set(shown) == {"vm209"} and "vm209" not in hidden and hidden
    assert re.search(r'data-host="vm209" data-family="mounts" title="[^"]*">[^<]*</td>', dom)
    assert "of vm209 × mounts shown" in dom


def test_gates_in_another_order_or_missing_keep_their_own_strips() -> None:
    # Rows of runs with the same gates in the same order are cut into strips together
    # (analysis._flush); a new order, a gate left out or a new one starts a new stretch.
    seq = [{"a": "pass", "b": "fail"}, {"a": "pass", "b": "fail"}, {"b": "skip", "a": "error"},
           {"c": "waived"}, {"a": "unreachable", "c": "pass", "b": "pass"}]
    s = analysis.analyse(header(5), [run(k, o) for k, o in enumerate(seq, 1)])
    A, O, F, U, E, S, W = (analysis.ABSENT, analysis.OK, analysis.FAILED, analysis.UNREACH,
                           analysis.ERR, analysis.SKIPPED, analysis.WAIVED)
    assert list(s.gates) == ["a", "b", "c"]
    assert bytes(s.gates["a"].codes) == bytes([O, O, E, A, U])
    assert bytes(s.gates["b"].codes) == bytes([F, F, S, A, O])
    assert bytes(s.gates["c"].codes) == bytes([A, A, A, W, O])
    assert [r["bad"] for r in s.runs] == [True, True, True, False, True]
    assert (s.gates["b"].first_bad[0], s.gates["b"].last_bad[0], s.gates["b"].bad_runs) == (1, 2, 2)
    assert s.gates["b"].flaps == 0 and s.gates["c"].bad_runs == 0


def test_waived_is_no_failure_and_drawn_in_its_own_colour() -> None:
    s = analysis.analyse(header(3), [run(k, {"a": o}) for k, o in
                                     enumerate(["pass", "waived", "pass"], 1)])
    assert s.verdict() == (analysis.PASS, []) and s.gates["a"].flaps == 0
    html = report.render(s)
    assert 'class="o6"><title>run 2: WAIVED' in html
    assert f".o{analysis.WAIVED}{{fill:{report.FILL[analysis.WAIVED]}}}" in html


def test_strip_merges_equal_neighbours() -> None:
    codes = bytearray([1, 1, 1, 2, 1, 0, 0])
    svg = report.strip(codes, "o", analysis.WORD, first_k=10)
    assert re.findall(r'<rect x="(\d+)" width="(\d+)" height="1" class="o(\d)"><title>([^<]*)',
                      svg) == [("0", "3", "1", "runs 10-12: PASS"), ("3", "1", "2", "run 13: FAIL"),
                               ("4", "1", "1", "run 14: PASS"),
                               ("5", "2", "0", "runs 15-16: no result")]


def test_a_bad_seconds_value_anywhere_in_the_run_is_unreadable() -> None:
    # The tests are checked column by column (ledger._test_columns); a NaN after the first
    # test, a huge or negative number, a boolean or a short list still make the line unreadable.
    from opsverify.soak.ledger import run_problem

    for bad in (float("nan"), float("inf"), -1, 10 ** 400, True, "1"):
        r = run(1, {"a": "pass", "b": "pass", "c": "pass"})
        r["tests"]["b"][3] = bad
        assert run_problem(r) == "tests['b']", bad
    r = run(1, {"a": "pass", "b": "pass"})
    r["tests"]["b"].pop()
    assert run_problem(r) == "tests['b']"
    r = run(1, {"a": "pass"}, {"jellyfin": box(), "radarr": {**box(), "restart_count": True}})
    assert run_problem(r) == "containers['radarr']"
    r = run(1, {"a": "pass"}, {"jellyfin": {k: v for k, v in box().items() if k != "health"}})
    assert run_problem(r) is None
