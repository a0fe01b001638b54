"""The `tailscale` and `zfs` CLI stand-ins, run as scripts the way twin hosts run them."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from opsverify.facts.agent import programs
from opsverify.lab.standins import tailscale_cli, zfs_cli

STANDINS = Path(tailscale_cli.__file__).parent
GiB = 1024**3


class Result:
    """What one CLI run printed and returned."""

    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def run_cli(monkeypatch, capsys):
    """Run a stand-in's main() in-process (fast); the script path is tested once below."""

    def run(module, state: Path, *args: str) -> Result:
        monkeypatch.setenv(module.STATE_ENV, str(state))
        capsys.readouterr()
        code = module.main(list(args))
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run


@pytest.fixture
def ts_state(tmp_path) -> Path:
    path = tmp_path / "tailscale.json"
    path.write_text(json.dumps(tailscale_cli.seed(
        hostname="download-stack", ipv4="100.107.36.76",
        peers=[{"hostname": "streaming-stack", "ipv4": "100.123.207.64"},
               {"hostname": "exit", "ipv4": "100.64.0.9", "online": False,
                "tags": ["tag:exit"]}])))
    return path


@pytest.fixture
def tailscale(run_cli):
    return lambda state, *args: run_cli(tailscale_cli, state, *args)


def _set(path: Path, **changes: object) -> None:
    path.write_text(json.dumps(json.loads(path.read_text()) | changes))


def test_status_json_has_the_real_shape(tailscale, ts_state, sample, gaps):
    result = tailscale(ts_state, "status", "--json")
    assert result.returncode == 0 and result.stderr == ""
    status = json.loads(result.stdout)
    keyed = ("$.Peer", "$.User")
    assert gaps(sample("tailscale_status_json_RECONSTRUCTED.json"), status, keyed=keyed) == []
    tagged = {"x": next(p for p in status["Peer"].values() if p["HostName"] == "exit")}
    assert gaps(sample("tailscale_status_peer_entry_real_fragment.json"), tagged,
                keyed=("$",)) == []
    assert status["BackendState"] == "Running"
    assert status["Self"]["HostName"] == "download-stack" and status["Self"]["Online"] is True
    assert status["TailscaleIPs"][0] == status["Self"]["TailscaleIPs"][0] == "100.107.36.76"
    assert status["Self"]["DNSName"] == "download-stack.tail4f69a0.ts.net."
    assert status["CurrentTailnet"]["MagicDNSSuffix"] == status["MagicDNSSuffix"]


def test_ip(tailscale, ts_state):
    assert tailscale(ts_state, "ip", "-4").stdout == "100.107.36.76\n"
    both = tailscale(ts_state, "ip").stdout.splitlines()
    assert both[0] == "100.107.36.76" and both[1].startswith("fd7a:115c:a1e0:")
    assert tailscale(ts_state, "ip", "-4", "streaming-stack").stdout == "100.123.207.64\n"
    clash = tailscale(ts_state, "ip", "-4", "-6")
    assert clash.returncode == 1 and "mutually exclusive" in clash.stderr


def test_stopped(tailscale, ts_state):
    _set(ts_state, backend_state="Stopped")
    status = json.loads(tailscale(ts_state, "status", "--json").stdout)
    assert status["BackendState"] == "Stopped" and status["TailscaleIPs"] is None
    assert status["Self"]["Online"] is False
    text = tailscale(ts_state, "status")
    assert (text.returncode, text.stdout) == (1, "Tailscale is stopped.\n")
    ip = tailscale(ts_state, "ip", "-4")
    assert (ip.returncode, ip.stdout, ip.stderr) == (
        1, "", "no current Tailscale IPs; state: Stopped\n")


def test_logged_out_as_real_tailscale(tailscale, ts_state, sample, gaps):
    """cmd/tailscale/cli/status.go: with --json the status is printed and runStatus returns
    nil (exit 0) before any state check; only the text form exits 1 when logged out."""
    _set(ts_state, backend_state="NeedsLogin", auth_url="https://login.tailscale.com/a/xxxxxx")
    result = tailscale(ts_state, "status", "--json")
    assert result.returncode == 0 and result.stderr == ""
    status = json.loads(result.stdout)
    assert gaps(sample("tailscale_status_json_needslogin_issue1680_EXCERPT.json"), status) == []
    assert (status["BackendState"], status["TailscaleIPs"], status["AuthURL"]) == (
        "NeedsLogin", None, "https://login.tailscale.com/a/xxxxxx")
    assert programs.parse_tailscale_status(result.stdout) == {
        "backend_state": "NeedsLogin", "ips": [], "online": False}
    text = tailscale(ts_state, "status")
    assert (text.returncode, text.stdout) == (
        1, "Logged out.\n\nLog in at: https://login.tailscale.com/a/xxxxxx\n")


def test_daemon_down(tailscale, ts_state, tmp_path):
    _set(ts_state, daemon_running=False)
    for state in (ts_state, tmp_path / "absent.json"):
        for args in (("status", "--json"), ("ip", "-4")):
            result = tailscale(state, *args)
            assert result.returncode == 1 and result.stdout == ""
            assert result.stderr.startswith("failed to connect to local tailscaled")


def test_status_text_and_unknown_subcommand(tailscale, ts_state):
    lines = tailscale(ts_state, "status").stdout.splitlines()
    assert lines[0].split()[:2] == ["100.107.36.76", "download-stack"]
    assert lines[2].split()[-1] == "offline"
    unknown = tailscale(ts_state, "up")
    assert unknown.returncode == 1 and "unknown subcommand" in unknown.stderr


def test_the_cli_never_writes(tailscale, ts_state):
    before = ts_state.read_bytes(), ts_state.stat().st_mtime_ns
    tailscale(ts_state, "status", "--json")
    tailscale(ts_state, "ip", "-4")
    assert (ts_state.read_bytes(), ts_state.stat().st_mtime_ns) == before


@pytest.fixture
def zfs_state(tmp_path) -> Path:
    path = tmp_path / "zfs.json"
    path.write_text(json.dumps(zfs_cli.seed(datasets={
        "tank": 98304, "tank/docker": 98304, "tank/docker/media-stack": 412 * GiB,
        "tank/docker/media-stack@pre-split": GiB, "rpool": 98304,
    }, pool_size=8 * 1024 * GiB)))
    return path


@pytest.fixture
def zfs(run_cli):
    return lambda state, *args: run_cli(zfs_cli, state, *args)


def test_list_table(zfs, zfs_state):
    result = zfs(zfs_state, "list")
    assert result.returncode == 0
    assert result.stdout.splitlines() == [
        "NAME                     USED  AVAIL  REFER  MOUNTPOINT",
        "rpool                     96K  8.00T    96K  /rpool",
        "tank                     412G  7.60T    96K  /tank",
        "tank/docker              412G  7.60T    96K  /tank/docker",
        "tank/docker/media-stack  412G  7.60T   412G  /tank/docker/media-stack",
    ]


def test_list_scripted(zfs, zfs_state):
    result = zfs(zfs_state, "list", "-H", "-p", "-o", "name,used,refer",
                 "-t", "filesystem", "tank/docker/media-stack")
    assert result.stdout == f"tank/docker/media-stack\t{412 * GiB}\t{412 * GiB}\n"
    snaps = zfs(zfs_state, "list", "-H", "-o", "name", "-t", "snapshot", "-r", "tank")
    assert snaps.stdout == "tank/docker/media-stack@pre-split\n"


def test_list_missing_dataset(zfs, zfs_state):
    result = zfs(zfs_state, "list", "-H", "tank/docker/gone")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "cannot open 'tank/docker/gone': dataset does not exist\n"
    bad = zfs(zfs_state, "list", "-o", "nope")
    assert bad.returncode == 2 and "bad property list: invalid property 'nope'" in bad.stderr


def test_destroy_and_create(zfs, zfs_state):
    refused = zfs(zfs_state, "destroy", "tank/docker/media-stack")
    assert refused.returncode == 1 and "use '-r'" in refused.stderr
    dry = zfs(zfs_state, "destroy", "-rnv", "tank/docker/media-stack")
    assert dry.returncode == 0 and "will destroy tank/docker/media-stack\n" in dry.stdout
    assert zfs(zfs_state, "destroy", "-r", "tank/docker/media-stack").returncode == 0
    assert zfs(zfs_state, "list", "tank/docker/media-stack").returncode == 1
    assert zfs(zfs_state, "destroy", "tank/docker/media-stack").returncode == 1

    assert zfs(zfs_state, "create", "tank/docker/media-stack").returncode == 0
    assert zfs(zfs_state, "create", "tank/docker/media-stack").stderr == \
        "cannot create 'tank/docker/media-stack': dataset already exists\n"
    orphan = zfs(zfs_state, "create", "tank/a/b")
    assert orphan.returncode == 1 and "parent does not exist" in orphan.stderr
    assert zfs(zfs_state, "create", "-p", "tank/a/b").returncode == 0
    listed = zfs(zfs_state, "list", "-H", "-o", "name,mountpoint", "-r", "tank/a").stdout
    assert listed == "tank/a\t/tank/a\ntank/a/b\t/tank/a/b\n"


@pytest.mark.parametrize(("num", "text"), [
    (0, "0B"), (512, "512B"), (98304, "96K"), (1536, "1.50K"), (10239, "10.0K"),
    (412 * GiB + 123456789, "412G"), (int(7.6 * 1024 * GiB), "7.60T"),
])
def test_nicenum(num, text):
    assert zfs_cli._nicenum(num) == text


def test_scripts_run_as_commands(ts_state, zfs_state):
    """Twin hosts run the files themselves: shebang, executable bit, stdlib only."""

    def run(script: str, env_var: str, state: Path, *args: str) -> subprocess.CompletedProcess[str]:
        env = {"PATH": os.environ["PATH"], env_var: str(state)}
        return subprocess.run([str(STANDINS / script), *args], env=env, capture_output=True,
                              text=True, timeout=10, check=False)

    assert run("tailscale_cli.py", tailscale_cli.STATE_ENV, ts_state, "ip", "-4").stdout == \
        "100.107.36.76\n"
    missing = run("zfs_cli.py", zfs_cli.STATE_ENV, zfs_state, "list", "tank/nope")
    assert (missing.returncode, missing.stderr) == (
        1, "cannot open 'tank/nope': dataset does not exist\n")
