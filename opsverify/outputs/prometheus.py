"""The node-exporter textfile of a run: gauges per family and outcome, and the run's own."""

from __future__ import annotations

from typing import Any

from opsverify.redact import scrub, visible
from opsverify.results import EXIT_OK, OUTCOMES, count
from opsverify.verdict import SKIP, WAIVED


def _label(value: str) -> str:
    # control characters first (as \\xNN), then the backslashes of those escapes too
    return visible(value).replace("\\", "\\\\").replace('"', '\\"')


def prometheus_text(results: dict[str, Any] | None, *, now: float, code: int) -> str:
    """node-exporter textfile: per-family gauges and the last run's time, duration and success.

    Without results (the run never got to test anything) only the run gauges are written, with
    success 0, so an alert fires instead of yesterday's numbers standing.
    """
    out = ["# HELP opsverify_gates Gate tests of the last ops verify run, by family and outcome.",
           "# TYPE opsverify_gates gauge"]
    duration = 0.0
    if results is not None:
        duration = results["duration_s"]
        for family in sorted(set(results["families"])):
            fc = count(t for t in results["tests"] if t["family"] == family)
            out += [f'opsverify_gates{{family="{_label(family)}",outcome="{o}"}} {fc[o]}'
                    for o in OUTCOMES]
        skipped = [t for t in results["tests"] if t["outcome"] == SKIP]
        if skipped:  # a planned item or an unconfigured app, with its reason
            out += ["# HELP opsverify_skipped Gate tests skipped in the last run, with the reason.",
                    "# TYPE opsverify_skipped gauge"]
            out += [f'opsverify_skipped{{family="{_label(t["family"])}",test="{_label(t["name"])}"'
                    f',reason="{_label(t["message"])}"}} 1' for t in skipped]
        waived = [t for t in results["tests"] if t["outcome"] == WAIVED]
        if waived:  # an alert can fire before a waiver runs out
            out += [("# HELP opsverify_waived_days_left Gate tests a waiver accepted in the last "
                    "run: days until the waiver expires."),
                    "# TYPE opsverify_waived_days_left gauge"]
            out += [f'opsverify_waived_days_left{{family="{_label(t["family"])}",'
                    f'test="{_label(t["name"])}",owner="{_label(t["waiver"]["owner"])}"}} '
                    f'{t["waiver"]["days_left"]:g}' for t in waived]
        out += [("# HELP opsverify_stale_waivers Waivers matching gates of the last run, none of "
                "which failed."), "# TYPE opsverify_stale_waivers gauge",
                f"opsverify_stale_waivers {len(results.get('stale_waivers') or [])}"]
    out += [
        "# HELP opsverify_last_run_timestamp_seconds When the last ops verify run finished.",
        "# TYPE opsverify_last_run_timestamp_seconds gauge",
        f"opsverify_last_run_timestamp_seconds {now:.3f}",
        "# HELP opsverify_last_run_duration_seconds How long the last ops verify run took.",
        "# TYPE opsverify_last_run_duration_seconds gauge",
        f"opsverify_last_run_duration_seconds {duration:.3f}",
        "# HELP opsverify_last_run_success 1 if every gate of the last run passed, else 0.",
        "# TYPE opsverify_last_run_success gauge",
        f"opsverify_last_run_success {1 if code == EXIT_OK else 0}",
        "# HELP opsverify_last_run_exit_code Exit code of the last run (0, 1, 2 or 4).",
        "# TYPE opsverify_last_run_exit_code gauge",
        f"opsverify_last_run_exit_code {code}",
    ]
    return scrub("\n".join(out) + "\n")
