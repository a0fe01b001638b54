"""`ops ssot coverage` and the coverage gate: every SSOT entity is the subject of a gate, and
one that none checks is named with its file:line."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from opsverify import coverage, families
from opsverify.cli import main
from opsverify.ssot import load

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "verify"))
from opsrun import facts_dir, ops

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "ssot"

# The shipped SSOT's entities, per kind: a change here is a change of the SSOT or of the rule.
SHIPPED_KINDS = {
    "host": 4, "stack": 2, "container": 34, "mount": 4, "route": 4, "probe": 8,
    "secret_path": 2, "secret_key": 14, "generated_env": 1, "config_check": 13,
    "retired_address": 2, "decommission": 1, "scrape_target": 2, "promql_rule": 1,
    "planned": 2, "vm": 2, "waiver": 0,
}
TOTAL = sum(SHIPPED_KINDS.values())

# An active host with no SSH target: the SSOT is valid, yet no gate logs in to it.
NAS = """
  nas:
    description: a NAS the verifier has no login for
    role: host
    hostname: nas
    state: active
    lan_ip: 192.168.1.50
"""


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    dst = tmp_path / "ssot"
    shutil.copytree(SHIPPED, dst)
    return dst


def line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def plant_host(root: Path) -> str:
    """Add the unchecked host; return where coverage must say it is."""
    with (root / "hosts.yaml").open("a") as f:
        f.write(NAS)
    return f"{root}/hosts.yaml:{line_of(root / 'hosts.yaml', '  nas:')}"


def waive(root: Path, gate: str) -> str:
    """Add one waiver for `gate`; return its file:line."""
    p = root / "waivers.yaml"
    text = p.read_text().replace("waivers: []", "waivers:")
    p.write_text(text + f'  - gate: "{gate}"\n    reason: remount pending\n    owner: ronny\n'
                        "    since: 2026-02-10\n    expires: 2026-02-20\n")
    return f"{p}:{line_of(p, gate)}"


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main(["ssot", "coverage", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_shipped_ssot_is_fully_covered() -> None:
    rows = coverage.coverage(load(SHIPPED))
    kinds = coverage.counts(rows)
    assert {k: v["entities"] for k, v in kinds.items()} == SHIPPED_KINDS
    assert all(v["checked"] == v["entities"] for v in kinds.values())
    assert coverage.unchecked(rows) == []
    assert coverage.summary(rows) == f"{TOTAL}/{TOTAL} entities checked (100%)"


def test_the_command_lists_each_entity_with_its_gates(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--ssot", SHIPPED)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[-1] == f"ops ssot coverage: {TOTAL}/{TOTAL} entities checked (100%)"
    assert len(lines) == TOTAL + 1
    table = {tuple(ln.split()[:3]): ln.split()[3:] for ln in lines[:-1]}
    # what each case is, holds, or its family declares it covers
    assert table["host", "vm209", "ssot/hosts.yaml:28"] == ["reachability::test_host[vm209]"]
    assert table["host", "vm201", "ssot/hosts.yaml:21"] == ["decom::test_decommission[vm201]"]
    assert table["mount", "vm210:/mnt/media", "ssot/mounts.yaml:24"] == [
        "mounts::test_mount[vm210:/mnt/media]"]
    assert table["secret_key", "/spine/vm-infra/media-stack/streaming:LASTFM_SECRET",
                 "ssot/secrets.yaml:27"] == [
        "secrets::test_infisical_path[/spine/vm-infra/media-stack/streaming]"]
    assert table["retired_address", "100.92.156.118", "ssot/retired.yaml:7"] == [
        "stale_refs::test_stale_address[vm209:100.92.156.118]",
        "stale_refs::test_stale_address[vm210:100.92.156.118]"]
    assert table["generated_env", "/opt/stacks/streaming-stack/.env", "ssot/secrets.yaml:35"] == [
        "secrets::test_stack_secrets[vm210:streaming-stack]"]
    assert table["config_check", "jellyfin-startup-wizard", "ssot/wiring.yaml:96"] == [
        "wiring::test_config[jellyfin-startup-wizard]"]
    assert table["vm", "vm210", "ssot/vms.yaml:11"] == ["vms::test_vm[vm210]"]
    # every id listed is one the registry makes
    ids = {g.id for g in families.gates(load(SHIPPED))}
    assert {i for gates in table.values() for i in gates} <= ids


def test_an_unchecked_host_is_named_with_file_and_line(
        tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    where = plant_host(tree)
    code, out, err = run(capsys, "--ssot", tree)
    assert code == 1
    assert err == f"{where}: host nas: no gate checks it\n"
    row = next(ln for ln in out.splitlines() if ln.startswith("host ") and " nas " in ln)
    assert row.split()[2:] == [where, "UNCHECKED"]
    assert out.splitlines()[-1] == (f"ops ssot coverage: {TOTAL}/{TOTAL + 1} entities checked "
                                    f"({100 * TOTAL // (TOTAL + 1)}%)")


def test_a_waiver_is_covered_when_its_pattern_matches_a_gate(
        tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    where = waive(tree, "mounts::test_mount[vm210:*]")
    code, out, _ = run(capsys, "--ssot", tree, "--json")
    assert code == 0
    waiver = next(e for e in json.loads(out)["entities"] if e["kind"] == "waiver")
    assert f"{waiver['file']}:{waiver['line']}" == where
    assert waiver["gates"] == ["mounts::test_mount[vm210:/mnt/docker]",
                               "mounts::test_mount[vm210:/mnt/media]"]


def test_a_waiver_that_matches_no_gate_is_unchecked(
        tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    where = waive(tree, "mounts::test_mount[vm210:/mnt/nfs]")  # no such mount
    code, _, err = run(capsys, "--ssot", tree)
    assert code == 1
    assert err == f"{where}: waiver mounts::test_mount[vm210:/mnt/nfs]: no gate checks it\n"


def test_json_shape(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    where = plant_host(tree)
    code, out, err = run(capsys, "--ssot", tree, "--json")
    assert (code, err) == (1, "")
    doc = json.loads(out)
    assert set(doc) == {"entities", "total", "checked", "unchecked", "kinds"}
    assert (doc["total"], doc["checked"]) == (TOTAL + 1, TOTAL)
    assert all(set(e) == {"kind", "name", "file", "line", "gates"} for e in doc["entities"])
    assert [f"{u['file']}:{u['line']}" for u in doc["unchecked"]] == [where]
    assert doc["unchecked"][0] | {"gates": []} in doc["entities"]
    assert doc["kinds"]["host"] == {"entities": 5, "checked": 4}
    assert list(doc["kinds"]) == list(coverage.KINDS)


def test_an_invalid_ssot_exits_2_without_a_traceback(tree: Path) -> None:
    (tree / "hosts.yaml").write_text((tree / "hosts.yaml").read_text().replace(
        "tailscale_ip: 100.123.207.64", "tailscale_ip: 100.123.207"))
    p = ops("ssot", "coverage", "--ssot", tree)
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr and p.stdout == ""
    assert f"{tree}/hosts.yaml:47 $.hosts.vm210.tailscale_ip: '100.123.207' is not an IPv4 " \
           "address" in p.stderr
    assert p.stderr.splitlines()[-1] == "ops ssot coverage: invalid SSOT: 1 problem"
    missing = ops("ssot", "coverage", "--ssot", tree / "nowhere")
    assert missing.returncode == 2 and "Traceback" not in missing.stderr


def test_the_coverage_gate_fails_naming_the_entity_and_nothing_else_changes(
        tree: Path, tmp_path: Path) -> None:
    where = plant_host(tree)
    facts = facts_dir(tmp_path / "facts")
    gate = ops("verify", "--ssot", tree, "--facts", facts, "--family", "coverage")
    assert gate.returncode == 1, gate.stdout + gate.stderr
    assert (f"FAIL  coverage::test_every_entity_checked[ssot]: SSOT coverage: {where}: host nas:"
            " no gate checks it") in gate.stdout
    runs = {}
    for name, root in (("shipped", SHIPPED), ("planted", tree)):
        out = tmp_path / f"{name}.json"
        ops("verify", "--ssot", root, "--facts", facts, "--json", out)
        runs[name] = {f"{t['family']}::{t['name']}": t["outcome"]
                      for t in json.loads(out.read_text())["tests"]}
    gate_id = "coverage::test_every_entity_checked[ssot]"
    assert runs["shipped"].pop(gate_id) == "pass"
    assert runs["planted"].pop(gate_id) == "fail"
    assert runs["planted"] == runs["shipped"]


def test_the_coverage_gate_passes_and_reads_no_facts(tmp_path: Path) -> None:
    family = families.registry()["coverage"]
    assert (family.apis, family.host_facts, family.sources(load(SHIPPED), "")) == ((), False, [])
    p = ops("verify", "--facts", facts_dir(tmp_path / "facts"), "--family", "coverage")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "1/1 PASS" in p.stdout
