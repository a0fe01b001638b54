"""ops verify --wait: re-run only what is not green, until it is or the deadline."""

from __future__ import annotations

from typing import Any

from opsverify import results
from opsverify.settle import green_lines, wait


def run(outcomes: dict[str, str], finished: str = "t") -> dict[str, Any]:
    tests = [{"id": f"gates/test_m.py::{i}", "name": i, "family": "m", "host": "", "source": "",
              "outcome": o, "message": "" if o == "pass" else "no"} for i, o in outcomes.items()]
    counts = results.count(tests)
    return {"tests": tests, "counts": counts, "exit_code": results.exit_code(counts),
            "finished": finished, "duration_s": 0.1}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s


def test_only_what_is_not_green_is_run_again_until_it_is() -> None:
    clock, asked, shown = Clock(), [], []
    tries = iter([run({"a": "pass", "b": "fail", "c": "unreachable", "d": "skip"}),
                  run({"b": "fail", "c": "pass"}), run({"b": "pass"})])

    def attempt(ids: list[str] | None) -> dict[str, Any]:
        asked.append(ids)
        return next(tries)

    res, green = wait(attempt, deadline_s=60, interval_s=5, show=shown.append, clock=clock,
                      sleep=clock.sleep)
    assert asked == [None, ["gates/test_m.py::b", "gates/test_m.py::c"], ["gates/test_m.py::b"]]
    assert res["exit_code"] == 0 and res["counts"]["pass"] == 3 and res["counts"]["skip"] == 1
    assert green == {"gates/test_m.py::c": 5.0, "gates/test_m.py::b": 10.0}
    assert green_lines(res, green) == ["  green after 10 s: m::b", "  green after 5 s: m::c"]
    assert shown[0] == "ops verify --wait: 2 not green yet (m::b: FAIL), next try in 5 s, 60 s left"


def test_the_deadline_ends_the_wait_and_the_last_verdict_stands() -> None:
    clock = Clock()
    res, green = wait(lambda ids: run({"b": "fail"}), deadline_s=12, interval_s=5,
                      show=lambda s: None, clock=clock, sleep=clock.sleep)
    assert clock.now == 10 and res["exit_code"] == 1 and green == {}


def test_a_first_run_without_results_is_not_retried() -> None:
    asked = []
    res, _green = wait(lambda ids: asked.append(ids), deadline_s=60, interval_s=1,
                      show=lambda s: None)
    assert res is None and asked == [None]
