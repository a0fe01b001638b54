"""HTTP answers recorded as `.http` samples (status line, headers, blank line, body).

A sample keeps the vendor's own words; `answer()` can put this test's VM, node or path into
them (`subst`), so a scripted server answers exactly what the vendor would for this request.
"""

from __future__ import annotations

from dataclasses import dataclass

import samples


@dataclass(frozen=True)
class Wire:
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes


def load(name: str, subst: dict[str, str] | None = None) -> Wire:
    """The `.http` sample `name`, with each key of `subst` replaced by its value everywhere."""
    text = samples.raw(name).decode()
    for old, new in (subst or {}).items():
        assert old in text, f"{old!r} is not in sample {name}"
        text = text.replace(old, new)
    head, _, body = text.partition("\r\n\r\n")
    status_line, *lines = head.split("\r\n")
    _, status, reason = status_line.split(" ", 2)
    headers = dict(line.split(": ", 1) for line in lines)
    return Wire(int(status), reason, headers, body.encode())


def answer(name: str, subst: dict[str, str] | None = None) -> object:
    """The sample as an api_servers.Answer (imported lazily: only the facts tests have it)."""
    from api_servers import Answer
    w = load(name, subst)
    return Answer(w.status, w.body, dict(w.headers), reason=w.reason)
