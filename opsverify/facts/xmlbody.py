"""An XML answer read as the JSON its API would have sent, for the probes' key paths.

Subsonic servers (Navidrome) answer XML unless `f=json` is honoured, and some proxies or old
versions ignore it. Subsonic's JSON form is the XML's element tree: the root element's name is
the top key, attributes are keys, child elements are nested objects (a list when repeated) and
text content is `value`. So `subsonic-response.status` reads `<subsonic-response status="ok">`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any


def _local(name: str) -> str:
    return name.rsplit("}", 1)[-1]  # {http://subsonic.org/restapi}status -> status


def _element(el: ET.Element) -> dict[str, Any]:
    out: dict[str, Any] = {_local(k): v for k, v in el.attrib.items()}
    for child in el:
        key, value = _local(child.tag), _element(child)
        if key in out:
            out[key] = (out[key] if isinstance(out[key], list) else [out[key]]) + [value]
        else:
            out[key] = value
    text = (el.text or "").strip()
    if text:
        out["value"] = text
    return out


def parse(body: bytes) -> dict[str, Any]:
    """The XML document `body` as nested dicts; ValueError if it is not XML, or declares a
    DOCTYPE (entity tricks have no place in an API answer)."""
    head = body.lstrip()[:1]
    if head != b"<":
        raise ValueError("not XML")
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise ValueError("XML with a DOCTYPE is not read")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise ValueError(f"invalid XML: {exc}") from None
    return {_local(root.tag): _element(root)}
