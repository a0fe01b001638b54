"""The SSOT loader and `ops ssot check`: every kind of mistake is located, none crashes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest

from opsverify import ssot as ssot_pkg
from opsverify.cli import main
from opsverify.ssot.loader import parse_file

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "ssot"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A private copy of the shipped SSOT to break."""
    dst = tmp_path / "ssot"
    shutil.copytree(SHIPPED, dst)
    return dst


def edit(name: str, old: str, new: str, count: int = 1) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        p = root / name
        text = p.read_text()
        assert old in text, f"{old!r} not in {name}"
        p.write_text(text.replace(old, new, count))
    return apply


def write(name: str, data: bytes | str) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        p = root / name
        p.write_bytes(data if isinstance(data, bytes) else data.encode())
    return apply


def remove(name: str) -> Callable[[Path], None]:
    return lambda root: (root / name).unlink()


def line_of(root: Path, name: str, needle: str) -> int:
    """1-based line of the first line containing needle (after the mutation)."""
    for i, line in enumerate((root / name).read_text().splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError(f"{needle!r} not in {name}")


# (id, mutation, file, needle on the expected line or None, message fragment)
CASES = [
    ("bad-ipv4", edit("hosts.yaml", "tailscale_ip: 100.123.207.64", "tailscale_ip: 100.123.207"),
     "hosts.yaml", "tailscale_ip: 100.123.207", "$.hosts.vm210.tailscale_ip: '100.123.207' is not an IPv4 address"),
    ("duplicate-key", edit("stacks.yaml", "      sonarr:\n", "      radarr:\n"),
     "stacks.yaml", None, "duplicate key 'radarr'"),
    ("unknown-key", edit("stacks.yaml", "      recyclarr:\n        state: running\n",
                         "      recyclarr:\n        colour: red\n        state: running\n"),
     "stacks.yaml", "colour: red", "unknown key 'colour'"),
    ("shell-metachar-name", edit("stacks.yaml", "      unpackerr:\n", "      'radarr; rm -rf /':\n"),
     "stacks.yaml", "rm -rf", "does not match"),
    ("tab-indented", write("retired.yaml", "retired_addresses:\n\t- address: 100.117.1.53\n"),
     "retired.yaml", None, "tabs"),
    ("empty-file", write("retired.yaml", ""), "retired.yaml", None, "file is empty"),
    ("list-not-mapping", write("hosts.yaml", "- pve\n- vm209\n"), "hosts.yaml", None,
     "expected a mapping of top-level keys, got a list"),
    ("binary-garbage", write("routes.yaml", bytes(range(256)) * 4), "routes.yaml", None,
     "not a text file"),
    ("not-utf8", write("routes.yaml", b"cloudflare:\n  zone: caf\xe9\n"), "routes.yaml", None,
     "not UTF-8"),
    ("ten-megabytes", write("wiring.yaml", "# x\n" * (10 * 1024 * 1024 // 4)), "wiring.yaml", None,
     "may be at most"),
    ("yaml-syntax", write("routes.yaml", "cloudflare: {zone: [ronny.works\n"), "routes.yaml", None,
     "invalid YAML"),
    ("alias-bomb", write("retired.yaml", "a: &a [x, x]\nb: &b [*a, *a]\nretired_addresses: *b\n"),
     "retired.yaml", None, "aliases are not allowed"),
    ("missing-file", remove("routes.yaml"), "routes.yaml", None, "required SSOT file is missing"),
    ("unknown-file", write("extra.yaml", "x: 1\n"), "extra.yaml", None, "no schema for this file"),
    ("bad-mode", edit("mounts.yaml", "mode: ro", "mode: readonly"), "mounts.yaml", "readonly",
     "'readonly' is not one of 'ro', 'rw'"),
    ("port-out-of-range", edit("stacks.yaml", "ports: [8191]", "ports: [70000]"), "stacks.yaml",
     "70000", "70000"),
    ("path-traversal-root", edit("stacks.yaml", "config_roots: [/mnt/docker, /opt/stacks/download-stack]",
                                 "config_roots: [/mnt/docker/../../etc/shadow]"),
     "stacks.yaml", "etc/shadow", "does not match"),
    ("bad-date", edit("decommission.yaml", "hold_until: 2026-02-12T14:38:00Z", "hold_until: 12/02/2026"),
     "decommission.yaml", "12/02/2026", "is not a RFC 3339 date-time"),
    ("type-mismatch", edit("stacks.yaml", "healthcheck: false", "healthcheck: maybe"), "stacks.yaml",
     "maybe", "'maybe' is a string, expected boolean"),
    ("required-missing", edit("routes.yaml", "    port: 4533\n", ""), "routes.yaml", "music.ronny.works",
     "'port' is required"),
    # referential rules
    ("stack-unknown-host", edit("stacks.yaml", "host: vm209", "host: vm999"), "stacks.yaml",
     "host: vm999", "names host 'vm999'"),
    ("stack-on-decommissioned", edit("stacks.yaml", "host: vm209", "host: vm201"), "stacks.yaml",
     "host: vm201", "points at 'vm201', which is decommissioned"),
    ("route-unpublished-port", edit("routes.yaml", "port: 4533", "port: 4534"), "routes.yaml",
     "port: 4534", "no container publishes port 4534 on vm210"),
    ("mount-unknown-host", edit("mounts.yaml", "host: vm210", "host: vm211"), "mounts.yaml",
     "host: vm211", "names host 'vm211'"),
    ("wiring-unknown-container", edit("wiring.yaml", "from: download-stack:posterizarr",
                                      "from: download-stack:posterizar"),
     "wiring.yaml", "from: download-stack:posterizar", "names container 'download-stack:posterizar'"),
    ("wiring-docker-dns-across-vms", edit("wiring.yaml", "address: 100.123.207.64", "address: jellyfin"),
     "wiring.yaml", None, "must use the Tailscale IP of vm210 '100.123.207.64'"),
    ("wiring-secret-key", edit("wiring.yaml", "keys: {jellyfin.ip: jellyfin, jellyfin.port: 8096}",
                               "keys: {jellyfin.ip: jellyfin, jellyfin.apiKey: x}"),
     "wiring.yaml", "jellyfin.apiKey", "names a secret"),
    ("target-foreign-address", edit("observability.yaml", "address: 192.168.1.210", "address: 192.168.1.209"),
     "observability.yaml", None, "192.168.1.209 is none of vm210's addresses"),
    ("port-twice", edit("stacks.yaml", "ports: [8090]", "ports: [8080]"), "stacks.yaml", None,
     "port 8080 on vm209 is already published by download-stack:sabnzbd"),
    ("retired-in-active-record", edit("wiring.yaml", '"http://100.123.207.64:8096"}', '"http://100.117.1.53:8096"}'),
     "wiring.yaml", "100.117.1.53", "retired address 100.117.1.53"),
    ("decommissioned-keeps-address", edit("hosts.yaml", "    state: decommissioned",
                                          "    state: decommissioned\n    tailscale_ip: 100.117.1.53"),
     "hosts.yaml", None, "retired address 100.117.1.53"),
    ("probe-secret-unknown", edit("services.yaml", "secret: LIDARR_API_KEY", "secret: LIDARR_KEY"),
     "services.yaml", "LIDARR_KEY", "'LIDARR_KEY' is in no Infisical path"),
    ("hold-before-stop", edit("decommission.yaml", "hold_until: 2026-02-12T14:38:00Z",
                              "hold_until: 2026-02-09T14:38:00Z"),
     "decommission.yaml", "hold_until", "hold_until is not after stopped_at"),
    ("ssh-not-own-address", edit("hosts.yaml", "address: 100.107.36.76", "address: 100.123.207.64"),
     "hosts.yaml", "address: 100.123.207.64", "is none of vm209's addresses"),
    # every host reference in every file resolves (issue 10, item 12)
    ("retired-host-unknown", edit("retired.yaml", "    host: vm201", "    host: vm201-gone"),
     "retired.yaml", "host: vm201-gone", "names host 'vm201-gone', which hosts.yaml does not define"),
    ("retired-host-active", edit("retired.yaml", "    host: vm201", "    host: vm209"),
     "retired.yaml", "host: vm209", "100.117.1.53 is retired, but vm209 is active"),
    ("nfs-server-unknown", edit("mounts.yaml", "nfs_server: pve", "nfs_server: pve2"),
     "mounts.yaml", "nfs_server: pve2", "names host 'pve2'"),
    ("scrape-target-unknown-host", edit("observability.yaml", "host: vm210", "host: vm2100"),
     "observability.yaml", "host: vm2100", "names host 'vm2100'"),
    ("app-setting-unknown-host", edit("wiring.yaml", "    host: vm210\n    file: /mnt/docker/jellyfin/config",
                                      "    host: vm-210\n    file: /mnt/docker/jellyfin/config"),
     "wiring.yaml", "host: vm-210", "names host 'vm-210'"),
    # a generated .env (issue 10, item 15)
    ("generated-env-readable", edit("secrets.yaml", 'mode: "0600"', 'mode: "0644"'),
     "secrets.yaml", 'mode: "0644"', "mode 0644 lets others than the owner read the secrets"),
    ("generated-env-bad-mode", edit("secrets.yaml", 'mode: "0600"', 'mode: "600"'),
     "secrets.yaml", 'mode: "600"', "does not match"),
    ("generated-env-outside", edit("secrets.yaml", "  /opt/stacks/streaming-stack/.env:",
                                   "  /etc/opsverify/.env:"),
     "secrets.yaml", "/etc/opsverify/.env:", "is under neither streaming-stack's directory"),
    ("generated-env-stack", edit("secrets.yaml", "    stack: streaming-stack\n    unit",
                                 "    stack: streaming\n    unit"),
     "secrets.yaml", None, "stack 'streaming' is not defined"),
    ("generated-env-not-a-service", edit("secrets.yaml", "unit: streaming-stack.service",
                                         "unit: streaming-stack.timer"),
     "secrets.yaml", "streaming-stack.timer", "does not match"),
    ("generated-env-not-env", edit("secrets.yaml", "  /opt/stacks/streaming-stack/.env:",
                                   "  /opt/stacks/streaming-stack/secrets.txt:"),
     "secrets.yaml", "secrets.txt:", "matches none of plaintext_files"),
    # planned items and `when: configured` (items 13, 16)
    ("planned-bad-phase", edit("observability.yaml", "phase: P8", "phase: eight"),
     "observability.yaml", "phase: eight", "does not match"),
    ("planned-no-reason", edit("observability.yaml", "    reason: P8 is OPEN; Loki is not deployed yet\n", ""),
     "observability.yaml", None, "'reason' is required"),
    ("when-unknown", edit("wiring.yaml", "when: configured", "when: later"),
     "wiring.yaml", "when: later", "'later' is not one of 'configured'"),
]


@pytest.mark.parametrize("mutate,name,needle,fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_ssot_is_located(tree: Path, capsys, mutate, name, needle, fragment) -> None:
    mutate(tree)
    code = main(["ssot", "check", "--ssot", str(tree)])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if fragment in ln]
    assert lines, f"no line with {fragment!r} in:\n{err}"
    where = re.match(r"(\S+?)(?::(\d+))?:? ", lines[0])
    assert where and where.group(1).endswith(name), lines[0]
    if needle:
        assert int(where.group(2)) == line_of(tree, name, needle), lines[0]


def test_every_problem_is_collected(tree: Path) -> None:
    """Two unrelated mistakes in two files: both are reported, not just the first."""
    edit("hosts.yaml", "tailscale_ip: 100.123.207.64", "tailscale_ip: 100.123.207")(tree)
    edit("mounts.yaml", "mode: ro", "mode: readonly")(tree)
    with pytest.raises(ssot_pkg.SsotInvalid) as exc:
        ssot_pkg.load(tree)
    files = {p.file.rsplit("/", 1)[-1] for p in exc.value.problems}
    assert files == {"hosts.yaml", "mounts.yaml"}


def test_missing_directory(tmp_path: Path, capsys) -> None:
    assert main(["ssot", "check", "--ssot", str(tmp_path / "nope")]) == 2
    assert "SSOT directory not found" in capsys.readouterr().err


def test_shipped_ssot_is_valid(capsys) -> None:
    assert main(["ssot", "check"]) == 0
    assert capsys.readouterr().out.startswith("ops ssot check: OK")


def test_schemas_are_valid_2020_12() -> None:
    schemas = sorted((SHIPPED / "schemas").glob("*.schema.json"))
    assert len(schemas) == len(list(SHIPPED.glob("*.yaml")))
    for path in schemas:
        schema = json.loads(path.read_text())
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        jsonschema.Draft202012Validator.check_schema(schema)


def test_line_numbers_round_trip() -> None:
    """Every mapping key's recorded line is the line where that key is written."""
    checked = 0
    for path in SHIPPED.glob("*.yaml"):
        src = parse_file(path, path.name)
        text = path.read_text().splitlines()
        for node_path, line in src.lines.items():
            if node_path and isinstance(node_path[-1], str):
                key = node_path[-1]
                assert key in text[line - 1], f"{path.name}:{line} does not hold {key!r}"
                checked += 1
    assert checked > 300


def test_cli_never_prints_a_traceback(tree: Path) -> None:
    """The installed command, as a person runs it, on garbage."""
    write("stacks.yaml", b"\x89PNG\r\n\x1a\n" + bytes(range(256)))(tree)
    proc = subprocess.run([sys.executable, "-m", "opsverify.cli", "ssot", "check", "--ssot", str(tree)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "stacks.yaml" in proc.stderr
