"""deploy/: the CI workflow against GitHub's workflow schema, the systemd units against systemd."""

from __future__ import annotations

import configparser
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import check_jsonschema
import jsonschema
import pytest
from ruamel.yaml import YAML

from opsverify.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / "deploy" / "ci" / "opsverify-nightly.yml"
UNITS = ROOT / "deploy" / "systemd"
SCHEMAS = Path(check_jsonschema.__file__).parent / "builtin_schemas"


def workflow() -> dict:
    """The workflow as Actions reads it: YAML 1.2, where `on` is a key, not True."""
    return YAML(typ="safe").load(WORKFLOW.read_text())


def test_workflow_matches_the_github_workflow_schema() -> None:
    for name in ("vendor/github-workflows.json", "custom/github-workflows-require-timeout.json"):
        schema = json.loads((SCHEMAS / name).read_text())
        errors = list(jsonschema.Draft7Validator(schema).iter_errors(workflow()))
        assert not errors, [e.message for e in errors]


def test_workflow_with_check_jsonschema_cli() -> None:
    p = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema",
                        "vendor.github-workflows", str(WORKFLOW)], capture_output=True, text=True,
                       check=False)
    assert p.returncode == 0, p.stdout + p.stderr


def test_the_schema_check_does_catch_a_broken_workflow() -> None:
    broken = workflow()
    broken["jobs"]["verify"]["steps"][0]["uses"] = 42
    schema = json.loads((SCHEMAS / "vendor/github-workflows.json").read_text())
    assert list(jsonschema.Draft7Validator(schema).iter_errors(broken))


def test_workflow_runs_nightly_and_on_demand_keeps_reports_and_fails_on_drift() -> None:
    w = workflow()
    on = w["on"]
    assert {"schedule", "workflow_dispatch"} <= set(on) and on["schedule"][0]["cron"]
    job = w["jobs"]["verify"]
    assert "self-hosted" in job["runs-on"]
    steps = job["steps"]
    verify = next(s for s in steps if "ops verify" in s.get("run", ""))
    for flag in ("--junit-xml", "--html", "--json"):
        assert flag in verify["run"]
    assert "continue-on-error" not in verify and "|| true" not in verify["run"]
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["if"] == "always()" and upload["with"]["path"] == "reports/"


def test_workflow_credentials_are_the_names_settings_reads() -> None:
    job_env = workflow()["jobs"]["verify"]["env"]
    secrets = {k for k, v in job_env.items() if "secrets." in str(v)}
    assert secrets == {"CLOUDFLARE_API_TOKEN", "INFISICAL_CLIENT_ID", "INFISICAL_CLIENT_SECRET",
                       "PROXMOX_API_TOKEN"}
    s = Settings.from_env({k: f"x-{k}" for k in job_env} | {"OPSVERIFY_TIMEOUT": "15"})
    assert s.cloudflare_token == "x-CLOUDFLARE_API_TOKEN"
    assert s.infisical_client_id == "x-INFISICAL_CLIENT_ID"
    assert s.infisical_client_secret == "x-INFISICAL_CLIENT_SECRET"
    assert s.proxmox_token == "x-PROXMOX_API_TOKEN"
    assert s.ssh_config == Path("x-OPSVERIFY_SSH_CONFIG")
    assert s.ca_bundle == Path("x-OPSVERIFY_CA_BUNDLE")


def unit(name: str) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read_string(re.sub(r"(?m)^(\w+)=(.*)$", r"\1 = \2", (UNITS / name).read_text()))
    return cp


def test_service_is_a_hardened_oneshot_writing_the_textfile() -> None:
    s = unit("opsverify.service")["Service"]
    assert s["Type"] == "oneshot" and s["User"] == "opsverify"
    assert s["EnvironmentFile"] == "/etc/opsverify/opsverify.env"
    assert " verify " in s["ExecStart"] and \
        "--prom /var/lib/node_exporter/textfile_collector/opsverify.prom" in s["ExecStart"]
    for key, value in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                       ("PrivateTmp", "yes"), ("CapabilityBoundingSet", "")):
        assert s[key] == value, key
    t = unit("opsverify.timer")["Timer"]
    assert t["Persistent"] == "true" and t["OnCalendar"] and t["Unit"] == "opsverify.service"


HARDENING = ("ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices", "NoNewPrivileges",
              "CapabilityBoundingSet", "AmbientCapabilities", "RestrictAddressFamilies",
              "SystemCallFilter", "ProtectProc", "RestrictNamespaces", "UMask")


def test_serve_unit_is_hardened_like_the_nightly_and_listens_on_loopback() -> None:
    from opsverify.cli import build_parser
    from opsverify.commands.serve import is_loopback, parse_listen

    s = unit("opsverify-serve.service")["Service"]
    nightly = unit("opsverify.service")["Service"]
    assert s["Type"] == "exec" and s["User"] == "opsverify" and s["Restart"] == "on-failure"
    assert s["EnvironmentFile"] == "/etc/opsverify/opsverify.env"
    for key in HARDENING:
        assert s[key] == nightly[key], key
    assert unit("opsverify-serve.service")["Install"]["WantedBy"] == "multi-user.target"
    # ExecStart is a valid `ops serve` command line, on loopback (no token needed) ...
    args = build_parser().parse_args(shlex.split(s["ExecStart"])[1:])
    assert args.command == "serve" and is_loopback(parse_listen(args.listen)[0])
    assert args.token_file is None and args.state and "--every 5m" in s["ExecStart"]
    # ... and the commented tailnet variant passes its token as a systemd credential.
    text = (UNITS / "opsverify-serve.service").read_text()
    tailnet = re.search(r"(?m)^#\s+ExecStart=(.*)$", text)[1]
    assert "#   LoadCredential=serve.token:/etc/opsverify/serve.token" in text
    args = build_parser().parse_args(shlex.split(tailnet)[1:])
    assert not is_loopback(parse_listen(args.listen)[0])
    assert str(args.token_file) == "${CREDENTIALS_DIRECTORY}/serve.token"


def test_env_example_names_are_the_names_settings_reads() -> None:
    names = re.findall(r"(?m)^([A-Z_]+)=", (UNITS / "opsverify.env.example").read_text())
    s = Settings.from_env({n: "/x" for n in names} | {"OPSVERIFY_TIMEOUT": "15"})
    assert s.secret_values() and s.ssh_config == Path("/x")
    assert set(names) >= {"CLOUDFLARE_API_TOKEN", "INFISICAL_CLIENT_ID",
                          "INFISICAL_CLIENT_SECRET", "PROXMOX_API_TOKEN"}


@pytest.fixture
def installed(tmp_path: Path) -> Path:
    """The units as installed, with ExecStart naming the `ops` this checkout installed."""
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed (no systemd on this machine)")
    ops = shutil.which("ops") or str(Path(sys.executable).with_name("ops"))
    if not Path(ops).exists():
        pytest.skip("the ops console script is not installed (pip install -e .)")
    for name in ("opsverify.service", "opsverify.timer", "opsverify-serve.service"):
        text = (UNITS / name).read_text().replace("/opt/opsverify/.venv/bin/ops", ops) \
            .replace("/opt/opsverify/deploy/", f"{ROOT}/deploy/")
        (tmp_path / name).write_text(text)
    return tmp_path


def test_units_pass_systemd_analyze_verify(installed: Path) -> None:
    p = subprocess.run(["systemd-analyze", "verify", "opsverify.service", "opsverify.timer",
                        "opsverify-serve.service"],
                       cwd=installed, capture_output=True, text=True, check=False)
    assert p.returncode == 0 and p.stdout + p.stderr == "", p.stdout + p.stderr


def test_systemd_analyze_does_complain_about_a_broken_unit(installed: Path) -> None:
    svc = installed / "opsverify.service"
    svc.write_text(svc.read_text().replace("Type=oneshot", "Type=oneshot\nProtectSytem=strict"))
    p = subprocess.run(["systemd-analyze", "verify", "opsverify.service"], cwd=installed,
                       capture_output=True, text=True, check=False)
    assert "Unknown key 'ProtectSytem'" in p.stdout + p.stderr


@pytest.mark.parametrize("name", ["opsverify.service", "opsverify-serve.service"])
def test_service_exposure_is_low(installed: Path, name: str) -> None:
    p = subprocess.run(["systemd-analyze", "security", "--offline=yes",
                        str(installed / name)], capture_output=True, text=True,
                       check=False)
    m = re.search(rf"Overall exposure level for {re.escape(name)}: ([\d.]+) (\w+)", p.stdout)
    if p.returncode != 0 or not m:
        pytest.skip(f"systemd-analyze security --offline is not supported here: {p.stderr[:200]}")
    assert float(m.group(1)) <= 2.0, p.stdout[-2000:]


# ---- what changed since the last green run (deploy/verify-since-green.sh) -----------------------

SINCE_GREEN = ROOT / "deploy" / "verify-since-green.sh"


def test_nightly_keeps_the_last_green_facts_and_diffs_a_red_run() -> None:
    s = unit("opsverify.service")["Service"]
    argv = shlex.split(s["ExecStart"])
    assert argv[:3] == ["/opt/opsverify/deploy/verify-since-green.sh", "/var/lib/opsverify/facts",
                        "/opt/opsverify/.venv/bin/ops"]
    assert argv[3] == "verify" and "--save-facts" not in argv  # the script adds it
    assert argv[1].startswith(f"/var/lib/{s['StateDirectory']}/")  # writable under strict
    assert SINCE_GREEN.stat().st_mode & 0o111, "the script must be executable"
    steps = workflow()["jobs"]["verify"]["steps"]
    names = [st.get("uses", "").split("@")[0] or st.get("run", "").split()[0] for st in steps]
    restore, verify, save = (names.index("actions/cache/restore"),
                             next(i for i, st in enumerate(steps) if "ops verify" in
                                  st.get("run", "")), names.index("actions/cache/save"))
    assert restore < verify < save
    assert steps[verify]["run"].startswith(
        "deploy/verify-since-green.sh facts .venv/bin/ops verify")
    assert steps[save]["if"] == "success()"
    assert steps[restore]["with"]["path"] == steps[save]["with"]["path"] == "facts/last-green"
    assert steps[save]["with"]["key"].startswith(steps[restore]["with"]["restore-keys"])


def _fake_ops(tmp_path: Path) -> Path:
    """An `ops` whose `verify` saves $FACTS as its facts and exits $CODE; anything else (`facts
    diff`) is the real one."""
    fake = tmp_path / "ops"
    fake.write_text(f"""#!/bin/sh
if [ "$1" = verify ]; then
    for last; do :; done
    cp -R "$FACTS" "$last" && exit "$CODE"
fi
exec {sys.executable} -m opsverify.cli "$@"
""")
    fake.chmod(0o755)
    return fake


def test_since_green_script_rotates_on_green_and_prints_the_diff_on_red(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "tests" / "verify"))
    from opsrun import facts_dir, mount

    def rw(f: dict) -> None:
        opts = mount(f, "vm210", "/mnt/media")["options"]
        opts[opts.index("ro")] = "rw"

    clean, drifted = facts_dir(tmp_path / "clean"), facts_dir(tmp_path / "drifted", rw)
    state, ops = tmp_path / "state", _fake_ops(tmp_path)

    def run(facts: Path, code: int) -> subprocess.CompletedProcess:
        return subprocess.run([str(SINCE_GREEN), str(state), str(ops), "verify", "-q"],
                              env={"PATH": "/usr/bin:/bin", "FACTS": str(facts),
                                   "CODE": str(code)},
                              capture_output=True, text=True, check=False, cwd=ROOT)

    first = run(drifted, 1)  # red before any green run: nothing to compare with
    assert first.returncode == 1 and "nothing to compare with" in first.stdout
    assert not (state / "last-green").exists()
    green = run(clean, 0)
    assert green.returncode == 0 and green.stdout == "", green.stdout + green.stderr
    assert (state / "last-green" / "host-vm210.json").exists()
    assert not (state / "current").exists()
    red = run(drifted, 1)
    assert red.returncode == 1, red.stdout + red.stderr
    assert red.stdout.splitlines()[0] == "what changed since the last green run:"
    assert "  mount vm210:/mnt/media: mode: was ro, now rw" in red.stdout.splitlines()
    unreachable = run(drifted, 4)  # the exit code of the run, whatever the diff says
    assert unreachable.returncode == 4
    assert (state / "last-green" / "host-vm210.json").read_text() == \
        (clean / "host-vm210.json").read_text()
    usage = subprocess.run([str(SINCE_GREEN), str(state)], capture_output=True, text=True,
                           check=False)
    assert usage.returncode == 2 and "usage:" in usage.stderr
