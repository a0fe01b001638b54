"""The HTML report of a run (or of merged shards): one self-contained page.

It opens with a host × family grid (one cell per pair, coloured by its worst outcome, the
counts inside; a click shows only that pair's gates), then the closing lines and relaxations,
then every gate, not passing first: each failure's findings as an expected | actual table with
the evidence the gate saw folded below. No external file, no framework: a few lines of script
filter the rows, and the page reads fine without them.
"""

from __future__ import annotations

import json
from collections import defaultdict
from html import escape
from typing import Any

from opsverify.redact import safe
from opsverify.results import OUTCOMES, SEVERITY
from opsverify.verdict import PASS

from .terminal import detail_lines, headline

NO_HOST = "(no host)"  # SSOT files, PromQL rules, planned items: gates about no one host

STYLE = """
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.3em;margin:0 0 .3em}h2{font-size:1.05em;margin:1.4em 0 .4em}
table{border-collapse:collapse}td,th{padding:3px 8px;text-align:left;vertical-align:top}
#gates td,#gates th{border-bottom:1px solid #ddd}
.grid td,.grid th{border:1px solid #fff;text-align:center}
.grid th{font-weight:600;cursor:pointer}.grid th.corner{cursor:default}
.grid td.cell{cursor:pointer;min-width:5.5em;border-radius:3px}
.grid td.none{background:#f4f4f4}
.cell.pass{background:#d7f0d9}.cell.skip{background:#e8e8e8}.cell.unreachable{background:#fde3b8}
.cell.error{background:#e6d2f5}.cell.fail{background:#f8c9c4}.cell.waived{background:#cfe3fb}
.cell.selected,th.selected{outline:2px solid #333}
.o{font-weight:600}.o.pass{color:#17692a}.o.fail{color:#b00}.o.unreachable{color:#a25a00}
.o.error{color:#6a1b9a}.o.skip{color:#666}.o.waived{color:#1565c0}
.findings{margin:.3em 0;font-size:13px}.findings th{background:#f4f4f4}
.findings td,.findings th{border:1px solid #ddd}
pre{margin:.2em 0;font-size:12px;white-space:pre-wrap}summary{cursor:pointer;color:#555}
.muted{color:#666}
"""

# A click on a cell (or a host or family heading) puts the pair in the address (#host=vm210&
# family=mounts): the filtered view can be linked and survives a reload.
SCRIPT = """
(function(){
  var rows=[].slice.call(document.querySelectorAll('#gates tbody tr'));
  var marks=[].slice.call(document.querySelectorAll('.grid [data-host],.grid [data-family]'));
  var note=document.getElementById('shown');
  function apply(){
    var q=new URLSearchParams(location.hash.slice(1)), h=q.get('host'), f=q.get('family'), n=0;
    rows.forEach(function(r){
      var on=(h===null||r.getAttribute('data-host')===h)&&
             (f===null||r.getAttribute('data-family')===f);
      r.hidden=!on; if(on){n++;}
    });
    marks.forEach(function(m){
      m.classList.toggle('selected',(h!==null||f!==null)&&m.getAttribute('data-host')===h&&
                                    m.getAttribute('data-family')===f);
    });
    note.textContent=(h===null&&f===null)?'every gate shown':
      n+' gate'+(n===1?'':'s')+' of '+(h===null?'every host':(h||'no host'))+' \\u00d7 '+
      (f===null?'every family':f)+' shown';
  }
  marks.forEach(function(m){m.addEventListener('click',function(){
    var q=new URLSearchParams();
    ['host','family'].forEach(function(k){
      var v=m.getAttribute('data-'+k); if(v!==null){q.set(k,v);}
    });
    location.hash=q.toString();
  });});
  document.getElementById('all').addEventListener('click',function(e){
    e.preventDefault();location.hash='';});
  window.addEventListener('hashchange',apply);
  apply();
})();
"""


def _worst(tests: list[dict[str, Any]]) -> str:
    return max((t["outcome"] for t in tests), key=lambda o: SEVERITY.get(o, 0))


def _cell(tests: list[dict[str, Any]]) -> str:
    """The counts of one host × family pair: 9/9, or 7/9 and what the other two are."""
    passed = sum(t["outcome"] == PASS for t in tests)
    others = [f"{sum(t['outcome'] == o for t in tests)} {o.upper()}" for o in OUTCOMES[1:]
              if any(t["outcome"] == o for t in tests)]
    return escape(f"{passed}/{len(tests)}") + "".join(f"<br>{escape(x)}" for x in others)


def grid(res: dict[str, Any]) -> str:
    """The host × family table; hosts as rows (the gates about no host last)."""
    pairs: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for t in res["tests"]:
        pairs[(t["host"] or NO_HOST, t["family"])].append(t)
    families = sorted({f for _, f in pairs})
    hosts = sorted({h for h, _ in pairs if h != NO_HOST}) + (
        [NO_HOST] if any(h == NO_HOST for h, _ in pairs) else [])
    head = "".join(f'<th data-family="{escape(f)}">{escape(f)}</th>' for f in families)
    rows = []
    for h in hosts:
        value = "" if h == NO_HOST else h
        cells = []
        for f in families:
            tests = pairs.get((h, f))
            if not tests:
                cells.append('<td class="none"></td>')
                continue
            cells.append(f'<td class="cell {escape(_worst(tests))}" data-host="{escape(value)}" '
                         f'data-family="{escape(f)}" title="{escape(h)} × {escape(f)}">'
                         f'{_cell(tests)}</td>')
        rows.append(f'<tr><th data-host="{escape(value)}">{escape(h)}</th>{"".join(cells)}</tr>')
    return (f'<table class="grid"><thead><tr><th class="corner">host \\ family</th>{head}'
            f'</tr></thead><tbody>{"".join(rows)}</tbody></table>')


def findings_table(test: dict[str, Any]) -> str:
    """A failure's findings: attribute | expected | actual, or the finding's sentence."""
    rows = []
    for f in test.get("findings") or []:
        if f.get("attribute") and not (f.get("expected") is None and f.get("actual") is None):
            rows.append("<tr>" + "".join(f"<td>{escape(_shown(f.get(k)))}</td>"
                                         for k in ("attribute", "expected", "actual")) + "</tr>")
        else:
            rows.append(f'<tr><td colspan="3">{escape(str(f.get("message", "")))}</td></tr>')
    if not rows:
        return ""
    return ('<table class="findings"><thead><tr><th>Attribute</th><th>Expected</th>'
            f'<th>Actual</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')


def _shown(value: Any) -> str:
    return "absent" if value is None else str(value)


def gate_row(t: dict[str, Any]) -> str:
    evidence = ""
    if t.get("evidence"):
        shown = json.dumps(t["evidence"], indent=1, sort_keys=True, default=str)
        # Quotes stay quotes in <pre> text: escaped, they would be most of a big page's bytes.
        evidence = (f"<details><summary>Evidence</summary><pre>{escape(shown, quote=False)}"
                    "</pre></details>")
    message = f'<br>{escape(t["message"])}' if t.get("message") else ""
    if t.get("waiver"):
        w = t["waiver"]
        message += (f'<br><span class="o waived">waived by {escape(w["owner"])}, '
                    f'{w["days_left"]:g} days left (until {escape(w["expires"][:10])}): '
                    f'{escape(w["reason"])}</span> <span class="muted">{escape(w["where"])}'
                    "</span>")
    o = escape(t["outcome"])
    return (f'<tr data-host="{escape(t["host"])}" data-family="{escape(t["family"])}">'
            f'<td class="o {o}">{o.upper()}</td><td>{escape(t["family"])}</td>'
            f'<td>{escape(t["host"])}</td><td>{escape(t["name"])}{message}'
            f"{findings_table(t)}{evidence}</td></tr>")


def page(res: dict[str, Any]) -> str:
    """The whole page, scrubbed once more on the way out, with any control character a host
    sent shown as an escape (the parts are already; this holds for whatever comes next)."""
    order = sorted(res["tests"], key=lambda t: (-SEVERITY.get(t["outcome"], 0), t["id"]))
    details = "\n".join(line.strip() for line in detail_lines(res))
    relaxed = "".join(f"<li>{escape(r)}</li>" for r in res.get("relaxations") or [])
    shards = "".join(
        f"<li>{escape(str(s['name']))}: {s['tests']} gates, {len(s['hosts'])} hosts, exit "
        f"{s['exit_code']}, {s['duration_s']} s</li>" for s in res.get("shards") or [])
    title = f"opsverify: {res['ssot']} at {res['finished']}"
    parts = [
        (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}'
        f"</title><style>{STYLE}</style></head><body>"),
        f"<h1>{escape(title)}</h1><p><strong>{escape(headline(res))}</strong></p>",
        (f'{grid(res)}<p class="muted"><span id="shown">every gate shown</span> · '
        '<a href="#" id="all">show every gate</a></p>'),
        f"<pre>{escape(details)}</pre>" if details else "",
        ("<h2>Relaxations (checks turned off for this run)</h2>"
        f"<ul>{relaxed or '<li>none</li>'}</ul>"),
        f"<h2>Runs merged</h2><ul>{shards}</ul>" if shards else "",
        ('<h2>Gates</h2><table id="gates"><thead><tr><th>Outcome</th><th>Family</th>'
        "<th>Host</th><th>Gate</th></tr></thead><tbody>"),
        "\n".join(map(gate_row, order)),
        f"</tbody></table><script>{SCRIPT}</script></body></html>\n",
    ]
    return safe("".join(parts), lines=True)
