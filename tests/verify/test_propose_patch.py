"""`ops verify --propose-patch FILE` on saved facts: the diff makes the SSOT say what the run
found (image, ports, env value, container state), changes nothing but those lines, applies
with `git apply`, and the same facts then pass against the patched SSOT; findings never to be
accepted (rw on vm210's media mount, a secret-named env value) are listed, not patched."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from opsrun import ROOT, facts_dir, mount, ops

from opsverify.outputs import patch

SECRET = "s3cr3t-canary-value-0042"


def box(f: Any, host: str, name: str) -> dict[str, Any]:
    return next(c for c in f[f"host:{host}"]["docker"]["containers"] if c["name"] == name)


def drift(f: Any) -> None:
    box(f, "vm210", "homarr")["image"] = "ghcr.io/homarr-labs/homarr:latest"
    box(f, "vm210", "watchtower")["env"]["DOCKER_API_VERSION"] = "1.47"
    for key in ("ports_configured", "ports_published"):
        for p in box(f, "vm210", "subgen")[key]:
            p["host_port"] = 9001
    flare = box(f, "vm209", "flaresolverr")
    flare.update(state="exited", ports_published=[])
    box(f, "vm209", "tdarr")["state"] = "running"
    mount(f, "vm210", "/mnt/media")["options"][0] = "rw"


# (original line, patched line) of stacks.yaml: everything else stays byte for byte
CHANGES = [
    ("        state: running\n        healthcheck: false\n        image: ghcr.io/flaresolverr/",
     "        state: stopped\n        healthcheck: false\n        image: ghcr.io/flaresolverr/"),
    (('        state: stopped                           # "evaluate during soak"; exited in P6\n'
     "        healthcheck: false\n        image: ghcr.io/haveagitgat/tdarr"),
     ('        state: running                           # "evaluate during soak"; exited in P6\n'
     "        healthcheck: false\n        image: ghcr.io/haveagitgat/tdarr")),
    ("        ports: [9000]                            # assumed: subgen default\n",
     "        ports: [{host: 9001, container: 9000}]   # assumed: subgen default\n"),
    ("        image: ghcr.io/ajnart/homarr:latest      # v1 pinned",
     "        image: ghcr.io/homarr-labs/homarr:latest # v1 pinned"),
    ('          DOCKER_API_VERSION: "1.45"             # assumed: same Docker CE 29.x as VM 209',
     '          DOCKER_API_VERSION: "1.47"             # assumed: same Docker CE 29.x as VM 209'),
]
GATES = ["containers::test_container[download-stack:flaresolverr]",
         "containers::test_container[download-stack:tdarr]",
         "containers::test_container[streaming-stack:subgen]",
         "containers::test_container[streaming-stack:homarr]",
         "containers::test_container[streaming-stack:watchtower]"]
MEDIA = "mounts::test_mount[vm210:/mnt/media]"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("patch")
    facts = facts_dir(tmp / "facts", drift)
    diff = tmp / "p.diff"
    p = ops("verify", "--facts", facts, "--propose-patch", diff, "-q")
    repo = tmp / "repo"
    shutil.copytree(ROOT / "ssot", repo / "ssot")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    return {"proc": p, "diff": diff, "text": diff.read_text(), "repo": repo, "facts": facts}


def git(repo: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *map(str, args)], cwd=repo, capture_output=True, text=True,
                          check=False)


def test_each_hunk_names_its_gate(run: dict[str, Any]) -> None:
    assert run["proc"].returncode == 1, run["proc"].stdout + run["proc"].stderr
    headings = [ln.split(" @@ ", 1)[1] for ln in run["text"].splitlines()
                if ln.startswith("@@ ")]
    assert sorted(", ".join(headings).split(", ")) == sorted(GATES), run["text"]
    assert run["text"].count("diff --git a/ssot/stacks.yaml b/ssot/stacks.yaml") == 1
    assert "mounts.yaml" not in run["text"]


def test_git_apply_accepts_it_and_changes_only_those_lines(run: dict[str, Any]) -> None:
    check = git(run["repo"], "apply", "--check", run["diff"])
    assert check.returncode == 0, check.stderr
    assert git(run["repo"], "apply", run["diff"]).returncode == 0
    original = (ROOT / "ssot" / "stacks.yaml").read_text()
    expected = original
    for old, new in CHANGES:
        assert expected.count(old) == 1, old
        expected = expected.replace(old, new)
    assert (run["repo"] / "ssot" / "stacks.yaml").read_text() == expected
    for other in (ROOT / "ssot").glob("*.yaml"):  # comments and key order: untouched
        if other.name != "stacks.yaml":
            assert (run["repo"] / "ssot" / other.name).read_bytes() == other.read_bytes()
    # the same facts against the patched SSOT: only the refused finding still fails
    again = ops("verify", "--facts", run["facts"], "--ssot", run["repo"] / "ssot", "-q")
    fails = [ln.split("]: ", 1)[0] + "]" for ln in again.stdout.splitlines()
             if ln.startswith("  FAIL  ")]
    assert fails == [f"  FAIL  {MEDIA}"], again.stdout


def test_rw_media_mount_on_vm210_is_listed_not_patched(run: dict[str, Any]) -> None:
    line = (f"  not patchable  {MEDIA}: mode rw on the streaming VM's media mount must be fixed "
            "on the host")
    out = run["proc"].stdout.splitlines()
    assert line in out and out.index(line) > max(i for i, ln in enumerate(out)
                                                 if ln.startswith("ops verify: "))
    assert f"#{line}" in run["text"].splitlines()
    assert run["text"].index(line) < run["text"].index("diff --git")


def finding_run(**finding: Any) -> dict[str, Any]:
    return {"started": "2026-02-11T12:00:00+00:00", "tests": [{
        "family": "containers", "name": "test_container[streaming-stack:watchtower]",
        "param": "streaming-stack:watchtower", "host": "vm210", "outcome": "fail",
        "message": finding["message"], "subject": "Container streaming-stack:watchtower on vm210",
        "findings": [finding], "evidence": {}}]}


def test_no_secret_value_ever_appears_in_a_patch() -> None:
    res = finding_run(attribute="env WATCHTOWER_NOTIFICATION_TOKEN", expected="x", actual=SECRET,
                      message=f"env WATCHTOWER_NOTIFICATION_TOKEN: expected x, got {SECRET}")
    text, refused = patch.render(res, ROOT / "ssot")
    assert SECRET not in text and "diff --git" not in text
    assert refused == [("  not patchable  containers::test_container[streaming-stack:watchtower]: "
                       "env WATCHTOWER_NOTIFICATION_TOKEN is secret-named: set it in Infisical, "
                       "never in the SSOT")]


def test_a_masked_value_is_not_patched() -> None:
    res = finding_run(attribute="env DOCKER_API_VERSION", expected="1.45", actual="v-********",
                      message="env DOCKER_API_VERSION: expected 1.45, got v-********")
    text, refused = patch.render(res, ROOT / "ssot")
    assert "diff --git" not in text and "masked" in refused[0]


def test_an_env_var_gone_from_the_container_is_removed_with_its_key() -> None:
    res = finding_run(attribute="env DOCKER_API_VERSION", expected="1.45", actual=None,
                      message="env DOCKER_API_VERSION: expected 1.45, got None")
    text, refused = patch.render(res, ROOT / "ssot")
    removed = [ln for ln in text.splitlines() if ln.startswith("-") and not ln.startswith("---")]
    assert not refused and [ln.strip() for ln in removed] == [
        "-        env:", ('-          DOCKER_API_VERSION: "1.45"             # assumed: same '
        "Docker CE 29.x as VM 209")], text
    assert not [ln for ln in text.splitlines() if ln.startswith("+") and
                not ln.startswith("+++")]


def test_a_change_the_ssot_would_refuse_is_not_patchable() -> None:
    res = {"tests": [{"family": "vms", "name": "test_vm[vm210]", "param": "vm210", "host": "",
                      "outcome": "fail", "message": "", "subject": "VM vm210 (210)", "evidence": {},
                      "findings": [{"attribute": "status", "expected": "running",
                                    "actual": "paused", "message": "status"}]}]}
    text, refused = patch.render(res, ROOT / "ssot")
    assert "diff --git" not in text and "the SSOT would refuse it" in refused[0], refused


def test_nothing_failed_nothing_to_patch() -> None:
    text, refused = patch.render({"tests": []}, ROOT / "ssot")
    assert refused == [] and "diff --git" not in text and text.startswith("# ops verify")
