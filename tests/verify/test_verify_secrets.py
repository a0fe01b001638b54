"""No output of `ops verify` ever holds a credential, even when a gate's facts contain it."""

from __future__ import annotations

import base64
import re
from pathlib import Path

from opsrun import env, facts_dir, ops

from opsverify.redact import MASK

TOKEN = "cf-canary-Zq81hT3vLxWm"  # a fake Cloudflare token, given as the environment gives it
PROXMOX = "root@pam!opsverify=4f1c1a2e-canary-9d1b"


def everything(text: str) -> str:
    """text plus the decoded content of every base64 data: URI in it."""
    blobs = re.findall(r"base64,([A-Za-z0-9+/=]+)", text)
    return text + "".join(base64.b64decode(b).decode(errors="replace") for b in blobs)


def test_credentials_are_masked_in_every_output(tmp_path: Path) -> None:
    def leak(f: dict) -> None:
        # Facts that carry the credentials verbatim, where gates quote them in a FAIL.
        f["host:vm210"]["hostname"] = TOKEN
        box = next(c for c in f["host:vm209"]["docker"]["containers"] if c["name"] == "watchtower")
        box["env"]["DOCKER_API_VERSION"] = PROXMOX

    facts = facts_dir(tmp_path / "facts", leak)
    out = tmp_path / "out"
    p = ops("verify", "--facts", facts, "-v", "--json", out / "r.json", "--junit-xml",
            out / "r.xml", "--html", out / "r.html", "--prom", out / "r.prom",
            environ=env(CLOUDFLARE_API_TOKEN=TOKEN, PROXMOX_API_TOKEN=PROXMOX))
    assert p.returncode == 1
    texts = {"stdout": p.stdout, "stderr": p.stderr,
             **{f.name: everything(f.read_text()) for f in out.iterdir()}}
    for name, text in texts.items():
        assert TOKEN not in text and PROXMOX not in text, f"credential leaked into {name}"
    # The gates did see them: the masks stand where the values were.
    for name in ("stdout", "r.json", "r.xml", "r.html"):
        assert MASK in texts[name], name
    assert f"got {MASK}" in texts["r.json"]
