"""The soak report: the analysed ledger (analysis.py) rendered as one self-contained HTML file.

No script, no external stylesheet, font or image: inline CSS and SVG only, so the file opens
anywhere, offline. Strips are run-length encoded (one <rect> per stretch of equal outcomes),
which keeps 864 runs x 190 gates small.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from html import escape
from typing import Any

from opsverify.redact import scrub, visible
from opsverify.soak.analysis import (
    ABSENT,
    C_ABSENT,
    C_RESTART,
    C_STOPPED,
    C_UNHEALTHY,
    C_UP,
    C_WORD,
    ERR,
    FAILED,
    OK,
    SKIPPED,
    UNREACH,
    WAIVED,
    WORD,
    Gate,
    Soak,
)
from opsverify.soak.runner import human

_STRETCH = re.compile(rb"(.)\1*", re.DOTALL)
GRID_MAX = 150  # up to this many runs a strip shows cell borders (1 px at 720 px wide)

CSS = """
body{font:13px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#222}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:14px;margin:16px 0 4px}h4{font-size:13px;margin:10px 0 2px;color:#555}
table{border-collapse:collapse;margin:4px 0}td,th{padding:2px 8px;text-align:left;
vertical-align:top;border-bottom:1px solid #eee}th{background:#f6f6f6}
.verdict{display:inline-block;padding:4px 12px;border-radius:4px;color:#fff;font-weight:bold}
.PASS{background:#2e7d32}.FAIL{background:#c62828}.INCOMPLETE{background:#8d6e00}
.row{display:flex;align-items:center;gap:8px}.label{width:440px;overflow:hidden;
text-overflow:ellipsis;white-space:nowrap;font-family:monospace;font-size:12px}
svg.strip{width:720px;height:12px;background:#fff;border:1px solid #ccc}
.o0{fill:#fff}.o1{fill:#43a047}.o2{fill:#e53935}.o3{fill:#9e9e9e}.o4{fill:#8e24aa}
.o5{fill:#cfd8dc}.o6{fill:#1e88e5}.c0{fill:#fff}.c1{fill:#43a047}.c2{fill:#fbc02d}.c3{fill:#90a4ae}
.c4{fill:#e53935}.key span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;
vertical-align:middle;border:1px solid #ccc}.bad{color:#c62828;font-weight:bold}
.muted{color:#777}code,.mono{font-family:monospace}
"""
FILL = {ABSENT: "#fff", OK: "#43a047", FAILED: "#e53935", UNREACH: "#9e9e9e", ERR: "#8e24aa",
        SKIPPED: "#cfd8dc", WAIVED: "#1e88e5"}
C_FILL = {C_ABSENT: "#fff", C_UP: "#43a047", C_UNHEALTHY: "#fbc02d", C_STOPPED: "#90a4ae",
          C_RESTART: "#e53935"}


def strip(codes: bytearray, prefix: str, words: dict[int, str], first_k: int = 1) -> str:
    """An SVG strip, one unit per run, equal neighbours merged into one rect."""
    n = max(1, len(codes))
    rects = []
    for m in _STRETCH.finditer(codes):  # each stretch of one code, found in C
        i, j, c = m.start(), m.end(), codes[m.start()]
        title = f"runs {first_k + i}-{first_k + j - 1}" if j - i > 1 else f"run {first_k + i}"
        rects.append(f'<rect x="{i}" width="{j - i}" height="1" class="{prefix}{c}">'
                     f"<title>{title}: {words[c]}</title></rect>")
    if n <= GRID_MAX:  # few runs: show them as separate cells
        rects.append(f'<rect width="{n}" height="1" fill="url(#cells{n})"/>')
    return (f'<svg class="strip" viewBox="0 0 {n} 1" preserveAspectRatio="none" '
            f'role="img">{"".join(rects)}</svg>')


def grid_defs(counts: Iterable[int]) -> str:
    """The cell-border patterns strips of these run counts use (ids are page-global)."""
    pats = "".join(
        f'<pattern id="cells{n}" patternUnits="userSpaceOnUse" width="1" height="1">'
        f'<rect x="{1 - n / 720:.4f}" width="{n / 720:.4f}" height="1" fill="#fff"/></pattern>'
        for n in sorted(set(counts)) if n <= GRID_MAX)
    return f'<svg width="0" height="0" style="position:absolute"><defs>{pats}</defs></svg>'


def _key(words: dict[int, str], fills: dict[int, str], codes: Iterable[int]) -> str:
    return '<p class="key">' + "".join(
        f'<span style="background:{fills[c]}"></span>{escape(words[c])}' for c in codes) + "</p>"


def _t(text: Any) -> str:
    """Any value as HTML text: escaped, control characters visible. Everything from the ledger
    goes through here, numbers included."""
    return escape(visible(str(text)))


def render(s: Soak) -> str:
    """The whole report as one HTML document (scrubbed)."""
    verdict, reasons = s.verdict()
    h = s.header
    first, last = (s.runs[0], s.runs[-1]) if s.runs else (None, None)
    window = (f"{first['started']} to {last['finished']} "
              f"({human(_span(first['started'], last['finished']))})" if first else "no run yet")
    parts = [
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>Soak {_t(h['name'])}: {verdict}</title><style>{CSS}</style></head><body>",
        f"<h1>Soak {_t(h['name'])} <span class=\"verdict {verdict}\">{verdict}</span></h1>",
        grid_defs([max(1, s.done)]),
        "<table>",
        f"<tr><th>Window</th><td>{_t(window)}</td></tr>",
        (f"<tr><th>Runs</th><td>{s.done} done / {_t(s.expected)} expected, every "
        f"{_t(human(float(h['every_s'])))} for {_t(human(float(h['for_s'])))}</td></tr>"),
        f"<tr><th>Selection</th><td class=\"mono\">ops verify {_t(' '.join(h['flags']))}</td></tr>",
        f"<tr><th>SSOT</th><td class=\"mono\">{_t(h.get('ssot', ''))}</td></tr>",
        f"<tr><th>Relaxations</th><td>{_t('; '.join(s.relaxations) or 'none')}</td></tr>",
        f"<tr><th>Gates</th><td>{len(s.gates)}</td></tr>",
        *([f'<tr><th>Ledger</th><td class="bad">{_t(s.unreadable_text)}</td></tr>']
          if s.unreadable else []),
        "</table>",
    ]
    if reasons:
        parts.append("<ul>" + "".join(f"<li>{_t(r)}</li>" for r in reasons) + "</ul>")
    parts += _runs_section(s) + _flapping(s) + _failures(s) + _timelines(s) + _boxes(s)
    parts += _reach(s)
    parts.append("</body></html>\n")
    return scrub("\n".join(parts))


def _span(a: str, b: str) -> float:
    return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()


def _runs_section(s: Soak) -> list[str]:
    if not s.runs:
        return []
    codes = bytearray(ERR if r["error"] else FAILED if r["exit_code"] == 1 else
                      UNREACH if r["exit_code"] == 4 else OK if r["exit_code"] == 0 else ERR
                      for r in s.runs)
    out = ["<h2>Runs</h2>", (f'<div class="row"><div class="label">every run</div>'
                            f"{strip(codes, 'o', WORD, s.runs[0]['k'])}</div>"),
           _key(WORD, FILL, (OK, FAILED, UNREACH, ERR)), _duration_chart(s),
           ("<h3>Slowest runs</h3><table><tr><th>Run</th><th>Started</th><th>Duration</th>"
           "<th>Result</th></tr>")]
    for r in sorted(s.runs, key=lambda r: -r["duration_s"])[:10]:
        c = r["counts"]
        result = _t(r["error"]) if r["error"] else _t(", ".join(
            f"{n} {o.upper()}" for o, n in c.items() if n))
        out.append(f"<tr><td>{_t(r['k'])}</td><td>{_t(r['started'])}</td>"
                   f"<td>{r['duration_s']:.1f} s</td><td>{result}</td></tr>")
    out.append("</table>")
    return out


def _duration_chart(s: Soak) -> str:
    """Run durations over the window, as an SVG polyline with its scale."""
    w, hgt, n = 720, 80, len(s.runs)
    top = max(r["duration_s"] for r in s.runs) or 1.0
    pts = " ".join(f"{(i + 0.5) * w / n:.1f},{hgt - r['duration_s'] / top * (hgt - 4):.1f}"
                   for i, r in enumerate(s.runs))
    return (f'<h3>Run duration</h3><svg width="{w + 60}" height="{hgt + 20}" role="img">'
            f'<rect x="0" y="0" width="{w}" height="{hgt}" fill="#fafafa" stroke="#ccc"/>'
            f'<polyline fill="none" stroke="#1565c0" stroke-width="1.5" points="{pts}"/>'
            f'<text x="{w + 4}" y="10" font-size="11">{top:.1f} s</text>'
            f'<text x="{w + 4}" y="{hgt}" font-size="11">0 s</text>'
            f'<text x="0" y="{hgt + 14}" font-size="11">run {_t(s.runs[0]["k"])}</text>'
            f'<text x="{w}" y="{hgt + 14}" font-size="11" text-anchor="end">'
            f'run {_t(s.runs[-1]["k"])}</text></svg>')


def _flapping(s: Soak) -> list[str]:
    flappers = sorted((g for g in s.gates.values() if g.flaps), key=lambda g: (-g.flaps, g.id))
    out = ["<h2>Flapping gates</h2>"]
    if not flappers:
        return [*out, '<p class="muted">None: no gate failed and then passed again.</p>']
    first_k = s.runs[0]["k"]
    out += [f'<div class="row"><div class="label" title="{_t(g.id)}">{_t(g.short)}</div>'
            f"{strip(g.codes, 'o', WORD, first_k)}<span class=\"bad\">{g.flaps} flap"
            f"{'s' if g.flaps != 1 else ''}</span></div>" for g in flappers]
    return out


def _failures(s: Soak) -> list[str]:
    bad = sorted((g for g in s.gates.values() if g.bad_runs), key=lambda g: g.id)
    out = ["<h2>Failures</h2>"]
    if not bad:
        return [*out, '<p class="muted">None: every gate passed every run.</p>']
    out.append("<table><tr><th>Gate</th><th>Runs not passed</th><th>First</th>"
               "<th>Last</th></tr>")
    for g in bad:
        first, last = g.first_bad, g.last_bad
        out.append(f'<tr><td class="mono" title="{_t(g.id)}">{_t(g.short)}</td>'
                   f"<td>{g.bad_runs}</td>"
                   f"<td>run {_t(first[0])} at {_t(first[1])}<br>{_t(first[2])}</td>"
                   f"<td>run {_t(last[0])} at {_t(last[1])}<br>{_t(last[2])}</td></tr>")
    out.append("</table>")
    return out


def _timelines(s: Soak) -> list[str]:
    out = ["<h2>Timeline per gate</h2>", _key(WORD, FILL, (OK, WAIVED, FAILED, UNREACH, ERR,
                                                          SKIPPED, ABSENT))]
    first_k = s.runs[0]["k"] if s.runs else 1
    by_family: dict[str, dict[str, list[Gate]]] = {}
    for g in s.gates.values():
        by_family.setdefault(g.family, {}).setdefault(g.host, []).append(g)
    for family in sorted(by_family):
        hosts = by_family[family]
        n = sum(len(v) for v in hosts.values())
        bad = sum(1 for v in hosts.values() for g in v if g.bad_runs)
        note = f'<span class="bad">{bad} not always passing</span>' if bad else "all passed"
        out.append(f"<details{' open' if bad else ''}><summary><strong>{_t(family)}</strong> "
                   f"({n} gates, {note})</summary>")
        for host in sorted(hosts):
            out.append(f"<h4>{_t(host or 'no host (SSOT / API-wide)')}</h4>")
            for g in sorted(hosts[host], key=lambda g: g.id):
                label = g.id.split("::", 1)[-1]
                out.append(f'<div class="row"><div class="label" title="{_t(g.id)}">'
                           f"{_t(label)}</div>{strip(g.codes, 'o', WORD, first_k)}</div>")
        out.append("</details>")
    return out


def _boxes(s: Soak) -> list[str]:
    out = ["<h2>Containers</h2>"]
    if not s.boxes:
        return [*out, ('<p class="muted">No container facts in this soak (replayed facts '
                      "without Docker, or only API/SSOT gates selected).</p>")]
    first_k = s.runs[0]["k"]
    end = s.runs[-1]["finished"]
    out += [_key(C_WORD, C_FILL, (C_UP, C_UNHEALTHY, C_STOPPED, C_RESTART, C_ABSENT)),
            ("<table><tr><th>Host</th><th>Container</th><th>Restarts</th><th>At the end</th>"
            "<th>Uptime at the end</th><th>Across the window</th></tr>")]
    for (host, name), b in sorted(s.boxes.items()):
        last = b.last or {}
        cls = "bad" if b.restarts and not b.may_restart else ""
        allowed = " (may restart)" if b.may_restart else ""
        state = f"{last.get('state') or '?'}" + (f", {last['health']}" if last.get("health")
                                                 else "")
        out.append(f"<tr><td>{_t(host)}</td><td>{_t(name)}</td>"
                   f'<td class="{cls}">{b.restarts}{allowed}</td><td>{_t(state)}</td>'
                   f"<td>{_t(_uptime(last, end))}</td>"
                   f"<td>{strip(b.codes, 'c', C_WORD, first_k)}</td></tr>")
    out.append("</table>")
    return out


def _uptime(c: dict[str, Any], end: str) -> str:
    started = c.get("started_at") or ""
    if c.get("state") != "running" or not started or started.startswith("0001"):
        return "-"
    try:
        t0 = datetime.fromisoformat(started[:26].rstrip("Z") + "+00:00"
                                    if "." in started else started.replace("Z", "+00:00"))
        return human((datetime.fromisoformat(end) - t0).total_seconds())
    except (ValueError, TypeError, OverflowError):  # a start time from a host: anything
        return "?"


def _reach(s: Soak) -> list[str]:
    out = ["<h2>Host and API reachability</h2>"]
    if not s.reach:
        return [*out, '<p class="muted">No host or API was asked in this soak.</p>']
    first_k = s.runs[0]["k"]
    out.append("<table><tr><th>Source</th><th>Reachable</th><th>Across the window</th>"
               "<th>Last reason</th></tr>")
    for source, codes in sorted(s.reach.items()):
        asked = sum(1 for c in codes if c != ABSENT)
        up = sum(1 for c in codes if c == OK)
        pct = f"{up}/{asked} runs" if asked else "-"
        cls = ' class="bad"' if up < asked else ""
        out.append(f"<tr><td>{_t(source)}</td><td{cls}>{pct}</td>"
                   f"<td>{strip(codes, 'o', WORD, first_k)}</td>"
                   f"<td>{_t(s.reach_why.get(source, ''))}</td></tr>")
    out.append("</table>")
    return out
