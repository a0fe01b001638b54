"""The results of one gate run: the JSON model `ops verify` writes, and every view of it.

fixtures/outcomes.py builds it during the pytest run and writes it with --opsverify-json;
`ops verify` turns it into JUnit XML and a Prometheus textfile; `ops soak` appends it to a
ledger. Every writer here scrubs registered secret values and replaces its file atomically.

    {"format": "opsverify-results/1", "ssot": str, "started": iso, "finished": iso,
     "duration_s": float, "exit_code": int, "relaxations": [str], "hosts": [str],
     "families": [str], "unreachable": {source: reason}, "remote_commands": [{host, purpose,
     command}], "counts": {pass, fail, unreachable, error, skip}, "tests": [{
        "id": pytest nodeid, "name": "test_mount[vm210:/mnt/media]", "param": "vm210:/mnt/media",
        "family", "host" ("" if none), "outcome", "message" (one line, "" on pass),
        "source" (the host or API that was unreachable, else ""), "duration_s", "evidence"}]}
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from opsverify.redact import safe, scrub, scrub_obj, visible
from opsverify.verdict import ERROR, FAIL, PASS, SKIP, UNREACHABLE

FORMAT = "opsverify-results/1"
OUTCOMES = (PASS, FAIL, UNREACHABLE, ERROR, SKIP)
EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 4
MAX_MESSAGE = 2000  # a message is one line; a findings list can still be long
REPORT_MODE = 0o640  # reports hold evidence; the process umask may make them stricter


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
    """0 all passed; 1 any FAIL or ERROR; 4 no FAIL but something UNREACHABLE."""
    if counts.get(FAIL) or counts.get(ERROR):
        return EXIT_FAIL
    if counts.get(UNREACHABLE):
        return EXIT_UNREACHABLE
    return EXIT_OK


def short_id(test: dict[str, Any]) -> str:
    """mounts::test_mount[vm210:/mnt/media]: family and test name, enough to find it."""
    return f"{test['family']}::{test['name']}"


def unreachable_groups(results: dict[str, Any]) -> list[tuple[str, str, int]]:
    """(source, reason, tests not run) once per host or API that could not be asked."""
    reasons = dict(results.get("unreachable") or {})
    tally: Counter[str] = Counter()
    for t in results["tests"]:
        if t["outcome"] == UNREACHABLE:
            source = t.get("source") or "?"
            tally[source] += 1
            reasons.setdefault(source, t["message"])
    return [(s, reasons[s], tally[s]) for s in sorted(tally)]


def display_source(source: str) -> str:
    """host:vm209 -> vm209; APIs keep their name."""
    return source.removeprefix("host:")


def headline(results: dict[str, Any]) -> str:
    """ops verify: 183/187 PASS, 3 FAIL, 1 UNREACHABLE (11 families, 3 hosts, 2.1 s)."""
    c, total = results["counts"], len(results["tests"])
    parts = [f"{c[PASS]}/{total} PASS"] + [f"{c[o]} {o.upper()}" for o in OUTCOMES[1:] if c[o]]
    nf, nh = len(results["families"]), len(results["hosts"])
    return (f"ops verify: {', '.join(parts)} ({nf} famil{'ies' if nf != 1 else 'y'}, "
            f"{nh} host{'s' if nh != 1 else ''}, {results['duration_s']:.1f} s)")


def detail_lines(results: dict[str, Any]) -> list[str]:
    """One line per failing test, one per skipped test, then one per unreachable host or API."""
    lines = [f"  {t['outcome'].upper():<5} {short_id(t)}: {t['message']}"
             for t in results["tests"] if t["outcome"] in (FAIL, ERROR)]
    # a SKIP is never silently absent: a planned item or an unconfigured app says why
    lines += [f"  SKIP  {short_id(t)}: {t['message']}"
              for t in results["tests"] if t["outcome"] == SKIP]
    for source, reason, n in unreachable_groups(results):
        shown = reason.removeprefix(f"{source}: ")
        lines.append(f"  {display_source(source)} UNREACHABLE: {shown} — "
                     f"{n} test{'s' if n != 1 else ''} not run")
    return [safe(line) for line in lines]


def write_atomic(path: Path, text: str, mode: int = REPORT_MODE) -> None:
    """Write text to path via a temporary file and rename: readers see old or new, never half.

    The temporary file is new (O_EXCL: no file or symlink someone placed there is written
    through; its name is random too), created with `mode` minus the umask (a systemd unit's
    UMask=0027 holds), and renamed over path (a symlink at path is replaced, not followed).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        try:
            fd = os.open(tmp, flags, mode)
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(f"{path.parent}: no unused temporary file name")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def dump(results: dict[str, Any]) -> str:
    return json.dumps(scrub_obj(results), indent=1, sort_keys=False, default=str) + "\n"


def write_json(path: Path, results: dict[str, Any]) -> None:
    write_atomic(path, dump(results))


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


def _x(value: Any) -> str:
    """A value as JUnit shows it: scrubbed, and nothing XML 1.0 cannot hold (control
    characters from hosts become visible escapes)."""
    return safe(str(value), lines=True)


def junit_xml(results: dict[str, Any]) -> str:
    """JUnit XML, one testsuite per family. FAIL is <failure>; UNREACHABLE and ERROR are <error>.

    Well-formed XML 1.0 whatever the hosts wrote: every value passes through _x()."""
    tests = results["tests"]
    c = results["counts"]
    root = ET.Element("testsuites", name="opsverify", tests=str(len(tests)),
                      failures=str(c[FAIL]), errors=str(c[UNREACHABLE] + c[ERROR]),
                      skipped=str(c[SKIP]), time=f"{results['duration_s']:.3f}",
                      timestamp=_x(results["started"]))
    host = socket.gethostname()
    for family in sorted({t["family"] for t in tests}):
        mine = [t for t in tests if t["family"] == family]
        fc = count(mine)
        suite = ET.SubElement(
            root, "testsuite", name=_x(family), tests=str(len(mine)), failures=str(fc[FAIL]),
            errors=str(fc[UNREACHABLE] + fc[ERROR]), skipped=str(fc[SKIP]),
            time=f"{sum(t['duration_s'] for t in mine):.3f}", timestamp=_x(results["started"]),
            hostname=_x(host))
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="ssot", value=_x(results["ssot"]))
        for r in results["relaxations"]:
            ET.SubElement(props, "property", name="relaxation", value=_x(r))
        for t in mine:
            case = ET.SubElement(suite, "testcase", classname=_x(f"gates.test_{family}"),
                                 name=_x(t["name"]), time=f"{t['duration_s']:.3f}",
                                 file=_x(t["id"].split("::", 1)[0]))
            _outcome_element(case, t)
    ET.indent(root)
    return scrub('<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, "unicode") + "\n")


def _outcome_element(case: ET.Element, t: dict[str, Any]) -> None:
    o, msg = t["outcome"], _x(t["message"])
    if o == FAIL:
        ET.SubElement(case, "failure", message=msg, type="Drift").text = msg
    elif o == UNREACHABLE:
        source = _x(t.get("source") or "")
        text = f"UNREACHABLE {display_source(source)}: {msg.removeprefix(source + ': ')}"
        ET.SubElement(case, "error", message=text, type="Unreachable").text = text
    elif o == ERROR:
        ET.SubElement(case, "error", message=msg, type="Error").text = msg
    elif o == SKIP:
        ET.SubElement(case, "skipped", message=msg)


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
