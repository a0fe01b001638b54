"""The SSOT generator: N active hosts, valid under the schemas, every synthetic VM complete."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from pathlib import Path

import pytest

from opsverify import ssot as ssot_pkg
from opsverify.lab import generate

REPO = Path(__file__).resolve().parents[2]
BASE = ssot_pkg.load()


@pytest.fixture(scope="module")
def ten(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssot_pkg.Ssot, dict]:
    out = tmp_path_factory.mktemp("gen") / "ssot10"
    hints = generate.generate(10, out)
    return ssot_pkg.load(out), hints


def test_n_active_hosts_valid_under_the_schemas(ten) -> None:
    s, hints = ten
    assert len(s.active_hosts) == 10 and s.problems == []
    synthetic = [h for h in s.active_hosts if h not in BASE.active_hosts]
    assert synthetic == hints["shared_engine"] and len(synthetic) == 10 - len(BASE.active_hosts)
    for name in BASE.hosts:  # the base's hosts are as they were
        assert s.hosts[name] == BASE.hosts[name]


def test_fresh_private_addresses(ten) -> None:
    s, hints = ten
    seen: set[str] = set(BASE.retired_addresses)
    for name in hints["shared_engine"]:
        h = s.hosts[name]
        assert ipaddress.ip_address(h.tailscale_ip) in generate.TAILSCALE_NET
        assert ipaddress.ip_address(h.lan_ip) in generate.LAN_NET
        assert h.ssh_address == h.tailscale_ip
        assert not {h.tailscale_ip, h.lan_ip} & seen
        seen |= {h.tailscale_ip, h.lan_ip}
    assert not seen & {a for h in BASE.hosts.values() for a in h.addresses}


def test_every_synthetic_vm_has_work_for_every_host_family(ten) -> None:
    s, hints = ten
    for k, name in enumerate(hints["shared_engine"]):
        shape = generate.SHAPES[k % 2]
        assert sorted(c.name for c in s.containers if c.host == name) == sorted(shape.containers)
        assert len([m for m in s.mounts if m.host == name]) == 2
        assert [st.host for st in s.stacks.values()].count(name) == 1
        stack = next(n for n, st in s.stacks.items() if st.host == name)
        assert any(sp.stack == stack for sp in s.secret_paths)
        assert any(p.host == name for p in s.probes)
        assert any(c.host == name for c in s.config_checks) == (shape.kind == "streaming")
        assert [t.job for t in s.scrape_targets if t.host == name] == [generate.SCRAPE_JOB]
        if shape.kind == "streaming":
            assert any(r.host == name for r in s.routes)
            # a cross-VM reference to its download neighbour, by that VM's Tailscale address
            peer = hints["shared_engine"][k - 1]
            assert any(c.host == name and c.address == s.hosts[peer].tailscale_ip
                       for c in s.config_checks)


def test_secret_keys_unique_and_aliased_to_their_template(ten) -> None:
    s, hints = ten
    keys = [k for sp in s.secret_paths for k in sp.keys]
    assert len(keys) == len(set(keys))
    for alias, key in hints["secret_aliases"].items():
        assert alias in keys and key in BASE.secret_keys
    probe_keys = {p.auth["secret"] for p in s.probes if "secret" in p.auth}
    assert probe_keys <= set(keys)


def test_a_stale_address_planted_in_one_vm_in_ten(ten) -> None:
    s, hints = ten
    assert len(hints["plant"]) == 1
    plant = hints["plant"][0]
    assert plant["address"] in s.retired_addresses
    assert plant["address"] in plant["content"] and plant["file"].startswith("/mnt/docker/")


def test_hundred_hosts(tmp_path: Path) -> None:
    hints = generate.generate(100, tmp_path / "s")
    s = ssot_pkg.load(tmp_path / "s")
    assert len(s.active_hosts) == 100 and len(hints["plant"]) == 10
    assert json.loads((tmp_path / "s" / generate.HINTS_FILE).read_text()) == hints


def test_the_shipped_size_is_the_base_unchanged(tmp_path: Path) -> None:
    n = len(BASE.active_hosts)
    hints = generate.generate(n, tmp_path / "s")
    assert hints["shared_engine"] == [] and len(ssot_pkg.load(tmp_path / "s").containers) == \
        len(BASE.containers)


def test_cli_refuses_fewer_hosts_than_the_base(tmp_path: Path) -> None:
    p = subprocess.run([sys.executable, "-m", "opsverify.lab.generate", "--hosts", "2", "--out",
                        str(tmp_path / "s")], capture_output=True, text=True, cwd=REPO,
                       check=False)
    assert p.returncode == 2 and "already has" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "s").exists()
