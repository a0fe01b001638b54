"""JUnit XML of a run, one testsuite per family, for CI test tabs."""

from __future__ import annotations

import socket
import xml.etree.ElementTree as ET
from typing import Any

from opsverify.redact import safe, scrub
from opsverify.results import count
from opsverify.verdict import ERROR, FAIL, SKIP, UNREACHABLE, WAIVED

from .terminal import display_source, waived_by


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
                      skipped=str(c[SKIP] + c.get(WAIVED, 0)), time=f"{results['duration_s']:.3f}",
                      timestamp=_x(results["started"]))
    host = socket.gethostname()
    for family in sorted({t["family"] for t in tests}):
        mine = [t for t in tests if t["family"] == family]
        fc = count(mine)
        suite = ET.SubElement(
            root, "testsuite", name=_x(family), tests=str(len(mine)), failures=str(fc[FAIL]),
            errors=str(fc[UNREACHABLE] + fc[ERROR]), skipped=str(fc[SKIP] + fc[WAIVED]),
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
    elif o == WAIVED:  # CI shows it apart from both a pass and a failure
        text = _x(f"WAIVED {t['message']} — {waived_by(t['waiver'])}")
        ET.SubElement(case, "skipped", message=text, type="Waived").text = text


