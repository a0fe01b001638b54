"""The results model of one gate run: built in memory while the gates run, rendered by
opsverify/outputs into every output, and kept as JSON (--json) for a later merge.

    {"format": "opsverify-results/1", "ssot": str, "started": iso, "finished": iso,
     "duration_s": float, "exit_code": int, "relaxations": [str], "hosts": [str],
     "families": [str], "unreachable": {source: reason}, "remote_commands": [{host, purpose,
     command}], "containers": {host: {name: {id, state, health, restart_count, started_at}}},
     "counts": {pass, fail, unreachable, error, skip}, "tests": [{
        "id": pytest nodeid, "name": "test_mount[vm210:/mnt/media]", "param": "vm210:/mnt/media",
        "family", "host" ("" if none), "outcome", "message" (one line, "" on pass),
        "subject": "Mount vm210:/mnt/media" (on a FAIL), "findings": [{attribute, expected,
        actual, message}] (on a FAIL: what differs, in parts), "source" (the host or API that
        was unreachable, else ""), "duration_s", "evidence": {name: facts the gate saw},
        "waiver": {gate, owner, reason, expires, days_left, finding, where} (when WAIVED)}],
     "stale_waivers": [waiver, "why"]: waivers matching gates of this run, none failing}
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from opsverify.redact import scrub, scrub_obj, visible
from opsverify.verdict import ERROR, FAIL, PASS, SKIP, UNREACHABLE, WAIVED

FORMAT = "opsverify-results/1"
OUTCOMES = (PASS, WAIVED, FAIL, UNREACHABLE, ERROR, SKIP)
EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 4
# The worse outcome first: a merge of shards keeps it, a report cell is coloured by it.
SEVERITY = {PASS: 0, SKIP: 1, WAIVED: 2, UNREACHABLE: 3, ERROR: 4, FAIL: 5}
MAX_MESSAGE = 2000  # a message is one line; a findings list can still be long


class ResultsError(Exception):
    """A results file that cannot be read; the message names the file and the problem."""


def one_line(text: str) -> str:
    """text on one line, scrubbed, control characters visible (\\x1b), bounded."""
    flat = visible(" ".join(scrub(str(text)).split()))
    return flat if len(flat) <= MAX_MESSAGE else flat[:MAX_MESSAGE - 3] + "..."


def count(tests: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Tests per outcome, every outcome present."""
    seen = Counter(t["outcome"] for t in tests)
    return {o: seen.get(o, 0) for o in OUTCOMES}


def exit_code(counts: dict[str, int]) -> int:
    """0 all passed (or waived); 1 any FAIL or ERROR; 4 no FAIL but something UNREACHABLE."""
    if counts.get(FAIL) or counts.get(ERROR):
        return EXIT_FAIL
    if counts.get(UNREACHABLE):
        return EXIT_UNREACHABLE
    return EXIT_OK


def dump(results: dict[str, Any]) -> str:
    return json.dumps(scrub_obj(results), indent=1, sort_keys=False, default=str) + "\n"


def load(path: Path) -> dict[str, Any]:
    """A results file written by write_json; ResultsError names what is wrong."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResultsError(f"{path}: no results written") from None
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{path}: unreadable results: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or "tests" not in data:
        raise ResultsError(f"{path}: not an opsverify results file")
    return data


