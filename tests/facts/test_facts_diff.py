"""`ops facts diff A B`: what changed between two saved facts directories, in the gates' words.

Offline: clean facts as `--save-facts` writes them (tests/verify/opsrun.py) and mutated copies;
each change reads as the gates say it and names exactly what changed, nothing else. On the lab
twin (OPSVERIFY_LAB_NAME): facts saved before and after real drift scenarios.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "verify"))
sys.path.insert(0, str(HERE.parent / "integration"))
from opsrun import CLEAN, SSOT, Facts, facts_dir, mount, ops

from opsverify import families
from opsverify.facts import contract, diff, saved

HOST_FAMILIES = "containers, mounts, reachability, secrets, stale_refs, wiring"
CANARY = "canary-Zq8wX3vT9"


def container(f: Facts, host: str, name: str) -> dict[str, Any]:
    return next(c for c in f[f"host:{host}"]["docker"]["containers"] if c["name"] == name)


def changes(tmp_path: Path, change: Callable[[Facts], Any],
            before: Callable[[Facts], Any] | None = None) -> list[diff.Change]:
    a = facts_dir(tmp_path / "a", before)
    b = facts_dir(tmp_path / "b", (lambda f: (before(f), change(f))) if before else change)
    return diff.compare_dirs(a, b, SSOT)


def lines(found: list[diff.Change]) -> list[tuple[str, str]]:
    return [(c.family, c.text()) for c in found]


def _mode_rw(f: Facts) -> None:
    opts = mount(f, "vm210", "/mnt/media")["options"]
    opts[opts.index("ro")] = "rw"


def _restart(f: Facts) -> None:
    c = container(f, "vm209", "sonarr")
    c["restart_count"], c["started_at"] = 2, "2026-02-11T11:58:00.000000000Z"


def _stale(f: Facts) -> None:
    f["host:vm209"]["stale_refs"].append(
        {"address": "100.117.1.53", "file": "/mnt/docker/prowlarr/prowlarr.db", "line": None,
         "table": "Applications", "row": 2, "column": "Settings"})


def _ingress(f: Facts) -> None:
    rule = next(r for r in f["cloudflare"]["tunnel"]["ingress"]
                if r["hostname"] == "jellyfin.ronny.works")
    rule["service"] = "http://100.117.1.53:8096"


def _literal(f: Facts) -> None:
    f["host:vm210"]["stacks"]["streaming-stack"]["compose"]["secrets"]["LASTFM_API_KEY"][
        "kind"] = "literal"


def _key_gone(f: Facts) -> None:
    f["infisical"]["paths"]["/spine/vm-infra/media-stack/streaming"]["keys"].remove(
        "LASTFM_SECRET")


def _posterizarr(f: Facts) -> None:
    f["host:vm209"]["config"]["posterizarr->jellyfin"]["values"][
        "JellyfinPart.JellyfinUrl"] = ["http://jellyfin:8096"]


def _target_down(f: Facts) -> None:
    t = next(t for t in f["prometheus"]["targets"] if t["instance"] == "192.168.1.210:9100")
    t["health"] = "down"


def _new_container(f: Facts) -> None:
    extra = dict(container(f, "vm209", "qbittorrent"), id="9f9f9f9f9f9f")
    f["host:vm210"]["docker"]["containers"].append(extra)


def _unreachable(f: Facts) -> None:
    f["host:vm209"] = {"unreachable": "ssh: connection refused"}


def _tailscale(f: Facts) -> None:
    f["host:vm210"]["tailscale"]["backend_state"] = "NeedsLogin"


def _destroyed(f: Facts) -> None:
    f["proxmox"]["vms"]["201"] = {"exists": False, "status": None, "qmpstatus": None,
                                  "onboot": None, "name": None}


# (mutation, exactly the (family, line)s it must produce)
CASES = {
    "mount-mode": (_mode_rw, [("mounts", "mount vm210:/mnt/media: mode: was ro, now rw")]),
    "vm-onboot": (lambda f: f["proxmox"]["vms"]["210"].update(onboot=0),
                  [("vms", "VM vm210 (210): onboot: was 1, now 0")]),
    "image": (lambda f: container(f, "vm209", "radarr").update(
        image="lscr.io/linuxserver/radarr:5.3"),
        [("containers", ("container download-stack:radarr: image: was "
                        "lscr.io/linuxserver/radarr:latest, now lscr.io/linuxserver/radarr:5.3"))]),
    "restart": (_restart, [
        ("containers", "container download-stack:sonarr: restart count: was 0, now 2"),
        ("containers", ("container download-stack:sonarr: started at: was "
                       "2026-02-10T21:00:00.000000000Z, now 2026-02-11T11:58:00.000000000Z"))]),
    "new-container": (_new_container, [
        ("containers", ("container qbittorrent on vm210: now present "
                       "(running, lscr.io/linuxserver/qbittorrent:latest)"))]),
    "route": (_ingress, [("routes", ("route jellyfin.ronny.works: ingress service: was "
                                    "http://100.123.207.64:8096, now http://100.117.1.53:8096"))]),
    "public-status": (lambda f: f["http"]["routes"]["requests.ronny.works"].update(
        status=200, location=None),
        [("routes", "route requests.ronny.works: public status: was 307, now 200"),
         ("routes", "route requests.ronny.works: public location: was /login, now none")]),
    "stale": (_stale, [("stale_refs", ("stale address 100.117.1.53 on vm209: now found in "
                                      "/mnt/docker/prowlarr/prowlarr.db (Applications id 2, "
                                      "column Settings)"))]),
    "compose-literal": (_literal, [("secrets", ("stack vm210:streaming-stack: compose "
                                               "LASTFM_API_KEY: was reference, now literal"))]),
    "infisical": (_key_gone, [("secrets", ("Infisical /spine/vm-infra/media-stack/streaming: "
                                          "keys: removed LASTFM_SECRET"))]),
    "wiring": (_posterizarr, [("wiring", ("wiring posterizarr->jellyfin on vm209: "
                                         "JellyfinPart.JellyfinUrl: was "
                                         "http://100.123.207.64:8096, now http://jellyfin:8096"))]),
    "target": (_target_down, [("observability", ("scrape target 192.168.1.210:9100 (job node): "
                                                "health: was up, now down"))]),
    "tailscale": (_tailscale, [("reachability",
                                "host vm210: tailscale state: was Running, now NeedsLogin")]),
    "decom": (_destroyed, [
        ("decom", "decommission vm201 (VM 201): exists: was true, now false"),
        ("decom", "decommission vm201 (VM 201): status: was stopped, now none"),
        ("decom", "decommission vm201 (VM 201): qmpstatus: was stopped, now none"),
        ("decom", "decommission vm201 (VM 201): name: was media-stack, now none")]),
    "unreachable": (_unreachable, [(HOST_FAMILIES,
                                    "host vm209: unreachable now (ssh: connection refused)")]),
}


@pytest.mark.parametrize("name", CASES)
def test_each_change_reads_as_the_gates_say_it_and_nothing_else(tmp_path: Path,
                                                                  name: str) -> None:
    change, expected = CASES[name]
    assert lines(changes(tmp_path, change)) == expected


def test_a_host_reachable_again_and_facts_saved_in_one_run_only(tmp_path: Path) -> None:
    a = facts_dir(tmp_path / "a", _unreachable)
    b = facts_dir(tmp_path / "b", lambda f: f.pop("prometheus"))
    assert lines(diff.compare_dirs(a, b, SSOT)) == [
        ("observability", "API prometheus: saved facts: was saved, now not saved"),
        (HOST_FAMILIES, "host vm209: reachable again (was unreachable: ssh: connection refused)")]


def _noise(f: Facts) -> None:
    for source, doc in f.items():
        if source.startswith("host:"):
            doc["duration_s"], doc["remote_s"] = 7.5, 3.25
            doc["transport"] = {"backend": "paramiko", "host_key": "verified",
                                "connect_s": 0.9, "command_s": 2.1}
            doc["docker"]["now"] = "2026-02-12T03:17:00Z"
            doc["scan"].update(files=4242, bytes=99, media_skipped=3)
            for c in doc["docker"]["containers"]:
                c["finished_at"] = "2026-02-11T03:00:00Z"
    f["host:vm210"]["mounts"].append(  # a container's root file system: Docker's own mount
        {"source": "overlay", "fstype": "overlay", "options": ["rw"],
         "target": "/var/lib/docker/overlay2/0a1b2c/merged"})
    for probe in f["http"]["probes"].values():
        probe["elapsed_s"] = 1.5
    for route in f["http"]["routes"].values():
        route["elapsed_s"] = 0.75
    f["prometheus"]["rules"]["streaming-io-isolation"]["values"] = [0.07]
    f["cloudflare"]["tunnel"]["version"] = 83


def test_what_changes_every_run_is_not_a_change(tmp_path: Path) -> None:
    a = facts_dir(tmp_path / "a", lambda f: [f[s].update(transport={
        "backend": "paramiko", "host_key": "verified", "connect_s": 0.1}) for s in f
        if s.startswith("host:")])
    b = facts_dir(tmp_path / "b", _noise)
    assert diff.compare_dirs(a, b, SSOT) == []
    assert diff.compare_dirs(a, a, SSOT) == []


def _canaries(value: str) -> Callable[[Facts], None]:
    def plant(f: Facts) -> None:
        container(f, "vm209", "radarr")["env"]["RADARR_API_KEY"] = value + "-env"
        cfg = f["host:vm209"]["config"]["prowlarr->radarr"]["values"]
        cfg["Settings.ApiKey"] = [value + "-config"]
        f["http"]["probes"]["radarr"]["json"]["apiKey"] = value + "-probe"
    return plant


def test_secret_values_never_appear_only_that_they_changed(tmp_path: Path) -> None:
    a = facts_dir(tmp_path / "a", _canaries(CANARY + "a"))
    b = facts_dir(tmp_path / "b", _canaries(CANARY + "b"))
    found = diff.compare_dirs(a, b, SSOT)
    assert lines(found) == [
        ("containers", ("container download-stack:radarr: env RADARR_API_KEY: changed "
                       "(value not shown)")),
        ("services", "service radarr: JSON apiKey: changed (value not shown)"),
        ("wiring", ("wiring prowlarr->radarr on vm209: Settings.ApiKey: changed "
                   "(value not shown)"))]
    for args in ((), ("--json",)):
        p = ops("facts", "diff", a, b, *args)
        assert p.returncode == 1 and CANARY not in p.stdout + p.stderr
    shown = json.loads(ops("facts", "diff", a, b, "--json").stdout)
    assert {(c["was"], c["now"]) for c in shown} == {("********", "********")}
    # one side only: set / unset, still without the value
    c = facts_dir(tmp_path / "c")
    p = ops("facts", "diff", c, b)
    assert "env RADARR_API_KEY: now set (value not shown)" in p.stdout
    assert CANARY not in p.stdout


def test_cli_groups_by_family_and_json_lists_each_change(tmp_path: Path) -> None:
    a = facts_dir(tmp_path / "a")
    b = facts_dir(tmp_path / "b", lambda f: (_mode_rw(f), _unreachable(f),
                                             f["proxmox"]["vms"]["210"].update(onboot=0)))
    p = ops("facts", "diff", a, b)
    assert p.returncode == 1 and p.stderr == ""
    assert p.stdout.splitlines() == [
        f"ops facts diff: 3 changes from {a} to {b}, in 3 families",
        "mounts", "  mount vm210:/mnt/media: mode: was ro, now rw",
        "vms", "  VM vm210 (210): onboot: was 1, now 0",
        HOST_FAMILIES, "  host vm209: unreachable now (ssh: connection refused)"]
    p = ops("facts", "diff", a, b, "--json")
    assert p.returncode == 1
    assert json.loads(p.stdout) == [
        {"family": "mounts", "source": "host:vm210", "subject": "mount vm210:/mnt/media",
         "attribute": "mode", "was": "ro", "now": "rw"},
        {"family": "vms", "source": "proxmox", "subject": "VM vm210 (210)",
         "attribute": "onboot", "was": 1, "now": 0},
        {"family": HOST_FAMILIES, "source": "host:vm209", "subject": "host vm209",
         "attribute": "unreachable", "was": None, "now": "ssh: connection refused"}]
    same = ops("facts", "diff", a, a, "--json")
    assert same.returncode == 0 and json.loads(same.stdout) == []
    same = ops("facts", "diff", a, a)
    assert same.returncode == 0 and same.stdout == f"ops facts diff: no change from {a} to {a}\n"


def test_without_an_ssot_subjects_are_named_by_host_and_id(tmp_path: Path) -> None:
    b = facts_dir(tmp_path / "b", lambda f: (container(f, "vm209", "radarr").update(image="x"),
                                             f["proxmox"]["vms"]["210"].update(onboot=0)))
    found = diff.compare_dirs(facts_dir(tmp_path / "a"), b, None)
    assert [c.text() for c in found] == [("container radarr on vm209: image: was "
                                         "lscr.io/linuxserver/radarr:latest, now x"),
                                         "VM 210: onboot: was 1, now 0"]


def _bad(tmp_path: Path, how: str) -> tuple[Path, str]:
    good = facts_dir(tmp_path / "bad")
    if how == "missing":
        return tmp_path / "nowhere", f"{tmp_path / 'nowhere'}: no such directory"
    if how == "file":
        return good / "proxmox.json", f"{good / 'proxmox.json'}: not a directory"
    if how == "empty":
        empty = tmp_path / "empty"
        empty.mkdir()
        (empty / "results.json").write_text("{}")
        return empty, f"{empty}: no saved facts in it"
    if how == "not-json":
        (good / "host-vm209.json").write_text("{\"hostname\": ")
        return good, f"{good / 'host-vm209.json'}: not JSON (line 1"
    (good / "proxmox.json").write_text(json.dumps({"node": "pve", "vms": {"210": 7}}))
    return good, f"{good / 'proxmox.json'}: proxmox facts break the contract at $.vms"


@pytest.mark.parametrize("how", ["missing", "file", "empty", "not-json", "contract"])
@pytest.mark.parametrize("side", ["A", "B"])
def test_bad_input_is_a_usage_error_naming_the_file(tmp_path: Path, how: str,
                                                    side: str) -> None:
    bad, says = _bad(tmp_path, how)
    good = facts_dir(tmp_path / "good")
    p = ops("facts", "diff", *((bad, good) if side == "A" else (good, bad)))
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.startswith(f"ops facts diff: {says}") and "Traceback" not in p.stderr


def test_help_and_registration() -> None:
    p = ops("facts", "diff", "--help")
    assert p.returncode == 0
    for said in ("--save-facts", "mount vm210:/mnt/media: mode: was ro, now rw", "--json",
                 "exit codes:", "0  no change", "1  something changed", "2  A or B"):
        assert said in p.stdout
    assert "facts" in ops("--help").stdout
    assert ops("facts").returncode == 2


def test_sections_map_to_families_that_read_them() -> None:
    """The host sections and API sections of real saved facts each belong to a family that
    reads that source (the registry says which), and no section is left unmapped."""
    reg = families.registry()
    for section, name in diff.SECTIONS.items():
        fam = reg[name]
        # services asks a host only when a probe failed from the verifier (its other end)
        assert fam.host_facts or "host:pve" in fam.more_sources(SSOT) or \
            (section, name) == ("probes", "services"), (section, name)
    for source, sections in diff.API_SECTIONS.items():
        for name in sections.values():
            assert source in reg[name].apis, (source, name)
    assert set(diff.API_SECTIONS) == set(contract.API_SOURCES)
    mapped = set(diff.SECTIONS) | diff.NOISE | {"errors"}
    for source, doc in CLEAN.items():
        if source.startswith("host:"):
            assert set(doc) <= mapped, source
    assert set(contract.SCHEMAS["host"]["properties"]) <= mapped


def test_a_section_a_newer_collector_adds_is_compared_whole(tmp_path: Path) -> None:
    found = changes(tmp_path, lambda f: f["host:vm209"].update(smart={"sda": "FAILING"}),
                    lambda f: f["host:vm209"].update(smart={"sda": "PASSED"}))
    assert lines(found) == [("other", ('host vm209: smart: was {"sda": "PASSED"}, '
                                      'now {"sda": "FAILING"}'))]


# ---- on the lab twin -------------------------------------------------------------------------

TWIN_DRIFTS = {
    "media-rw-vm210": {("mounts", "mount vm210:/mnt/media", "mode", "ro", "rw")},
    "vm210-onboot-0": {("vms", "VM vm210 (210)", "onboot", 1, 0)},
    "homarr-image": {("containers", "container streaming-stack:homarr", "image",
                      "ghcr.io/ajnart/homarr:latest", "ghcr.io/homarr-labs/homarr:latest")},
}
RECREATED = {"id", "started at"}  # a recreated container: a new id, started again


@pytest.fixture(scope="module")
def twin() -> Iterator[None]:
    """The lab twin (OPSVERIFY_LAB_NAME), up; taken down after if this module brought it up."""
    from twinrun import lab_status
    from twinrun import ops as lab

    if os.geteuid() != 0:
        pytest.skip("the lab twin needs root")
    from opsverify.lab import prereq
    if missing := prereq.missing():
        pytest.skip("lab twin prerequisites: " + "; ".join(missing))
    was_up = lab_status() is not None
    lab("lab", "up", timeout=600)
    yield
    lab("lab", "reset", timeout=300, check=False)
    if not was_up:
        lab("lab", "down", timeout=300)


def test_twin_diff_names_exactly_what_the_drift_changed(twin: None, tmp_path: Path) -> None:
    from twinrun import OPS
    from twinrun import ops as lab

    def save(name: str) -> Path:
        out = tmp_path / name
        p = lab("lab", "exec", "--", *OPS, "verify", "-q", "--save-facts", str(out),
                check=False, timeout=300)
        assert p.returncode in (0, 1) and saved.check_dir(out) == [], p.stdout[-2000:]
        return out

    lab("lab", "reset", timeout=300)
    a = save("a")
    again = save("again")  # two clean runs: nothing changed (no noise)
    p = lab("facts", "diff", str(a), str(again), check=False)
    assert p.returncode == 0, p.stdout
    for scenario in TWIN_DRIFTS:
        lab("lab", "drift", scenario, timeout=300)
    b = save("b")
    p = lab("facts", "diff", str(a), str(b), "--json", check=False)
    assert p.returncode == 1, p.stdout + p.stderr
    found = json.loads(p.stdout)
    want = set().union(*TWIN_DRIFTS.values())
    got = {(c["family"], c["subject"], c["attribute"], c["was"], c["now"]) for c in found
           if not (c["subject"] == "container streaming-stack:homarr"
                   and c["attribute"] in RECREATED)}
    assert got == want
    text = lab("facts", "diff", str(a), str(b), check=False).stdout
    assert "  mount vm210:/mnt/media: mode: was ro, now rw" in text
    assert "  VM vm210 (210): onboot: was 1, now 0" in text
    lab("lab", "reset", timeout=300)
