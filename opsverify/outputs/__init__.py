"""Every output of a run, rendered from its one results model (opsverify/results.py):

    terminal    the closing lines          junit       JUnit XML for CI
    html        the report page            prometheus  node-exporter's textfile
    ledger      a soak's line per run      files       atomic writes
    patch       --propose-patch: a diff making the SSOT say what the run found

`write()` writes the files asked for, each atomically; no output reads another from disk.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from opsverify.results import dump

from . import html, junit, prometheus
from .files import write_atomic


def write(res: dict[str, Any] | None, code: int, *, json: Path | None = None,
          junit_xml: Path | None = None, prom: Path | None = None,
          html_path: Path | None = None, patch: Path | None = None,
          ssot_dir: Path | None = None) -> list[str]:
    """The report files asked for. Without results (the run never got to a gate) only the
    Prometheus textfile is written, saying the run failed rather than keeping last night's.
    Returns the proposed patch's not-patchable lines (for the terminal)."""
    if prom is not None:
        write_atomic(prom, prometheus.prometheus_text(res, now=time.time(), code=code))
    if res is None:
        return []
    if json is not None:
        write_atomic(json, dump(res))
    if junit_xml is not None:
        write_atomic(junit_xml, junit.junit_xml(res))
    if html_path is not None:
        write_atomic(html_path, html.page(res))
    if patch is not None:
        from . import patch as proposal  # ruamel.yaml only when a patch is asked for

        text, refused = proposal.render(res, ssot_dir or Path(res["ssot"]))
        write_atomic(patch, text)
        return refused
    return []
