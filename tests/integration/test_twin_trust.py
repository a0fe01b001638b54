"""Trust: the verifier only reads, leaks nothing, refuses impostors and survives faults."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import pytest
from twinrun import OPS, REPO, failing, ops

from opsverify.facts import commands
from opsverify.ssot import load

TIMEOUT = 5.0


def lab_ssh(host: str, script: str) -> str:
    # One argument: like ssh, `ops lab ssh` hands the remote shell the words joined by spaces.
    return ops("lab", "ssh", host, "--", script, timeout=120).stdout


def snapshot(twin: dict[str, Any]) -> dict[str, Any]:
    """What a run could change: every file the gates read, each VM's containers, mounts."""
    snap: dict[str, Any] = {}
    ssot = load()
    for name in twin["hosts"]:
        roots = {"/etc/fstab"} | {p for st in ssot.stacks_on(name)
                                  for p in (st.directory, *st.config_roots)}
        snap[f"{name}:files"] = lab_ssh(name, (
            f"find {' '.join(sorted(roots))} -xdev 2>/dev/null "
            "| LC_ALL=C sort | while read -r f; do "
            "if [ -f \"$f\" ]; then sha256sum \"$f\"; fi; stat -c '%n %s %Y %Z %a' \"$f\"; done"))
        snap[f"{name}:mounts"] = lab_ssh(name, "cat /proc/mounts | LC_ALL=C sort")
        sock = twin["hosts"][name].get("docker_socket")
        if sock:
            ids = subprocess.run(["docker", "-H", f"unix://{sock}", "ps", "-aq", "--no-trunc"],
                                 capture_output=True, text=True, check=True).stdout.split()
            fmt = "{{.Name}} {{.Id}} {{.State.Status}} {{.RestartCount}} {{.State.StartedAt}}"
            snap[f"{name}:containers"] = sorted(subprocess.run(
                ["docker", "-H", f"unix://{sock}", "inspect", "-f", fmt, *ids],
                capture_output=True, text=True, check=True).stdout.splitlines()) if ids else []
    return snap


def test_a_full_run_changes_nothing_and_runs_only_audited_commands(twin, verify) -> None:
    before = snapshot(twin)
    code, results, text = verify()
    after = snapshot(twin)
    assert code == 0, text
    changed = sorted(k for k in before if before[k] != after[k])
    assert not changed, f"a verify run changed {changed}"
    commands_run = results["remote_commands"]
    assert {c["host"] for c in commands_run} == set(twin["hosts"])
    for c in commands_run:
        commands.check_described(c["command"])  # raises unless it is the audited command


ALL = {"reachability", "mounts", "containers", "secrets", "stale_refs", "wiring"}
FAULTS = [  # scenario, what the reason must say, the families whose vm209 tests go UNREACHABLE
    ("sshd-stopped-vm209", "refused", ALL),
    ("sshd-frozen-vm209", "within", ALL),
    ("host-key-rotated-vm209", "host key mismatch", ALL),
    # the rest still answers; the .env scan reads the config roots too
    ("hung-nfs-vm209", "did not finish", {"secrets", "stale_refs", "wiring"}),
]


@pytest.mark.parametrize("scenario,reason,families", FAULTS, ids=[f[0] for f in FAULTS])
def test_a_host_fault_costs_one_timeout_and_marks_only_that_host(scenario, reason, families,
                                                                 verify) -> None:
    t0 = time.monotonic()
    _, _, _ = verify("--timeout", str(TIMEOUT))
    baseline = time.monotonic() - t0
    ops("lab", "drift", scenario, timeout=180)
    try:
        t0 = time.monotonic()
        code, results, text = verify("--timeout", str(TIMEOUT))
        elapsed = time.monotonic() - t0
    finally:
        ops("lab", "reset", timeout=300)
    print(f"{scenario}: clean run {baseline:.1f} s, faulty run {elapsed:.1f} s")
    bad = [t for t in results["tests"] if t["outcome"] not in ("pass", "skip")]
    assert bad and all(t["outcome"] == "unreachable" for t in bad), failing(results)
    assert {t["host"] for t in bad} == {"vm209"}
    # Every vm209 gate that reads the host's facts (Infisical's paths are asked of the API).
    expected = {t["id"] for t in results["tests"] if t["host"] == "vm209"
                and t["family"] in families and "test_infisical_path" not in t["id"]}
    assert {t["id"] for t in bad} == expected
    assert reason in results["unreachable"].get("host:vm209", ""), results["unreachable"]
    assert code == 4
    assert text.count("UNREACHABLE") <= 3, "an unreachable host must be reported once"
    assert elapsed <= baseline + TIMEOUT + 5, f"{scenario} cost {elapsed - baseline:.1f} s"


def test_changed_host_key_is_refused_even_with_the_flag_and_the_report_says_so(verify, tmp_path) -> None:
    # OPSVERIFY_INSECURE_HOST_KEYS accepts unknown keys only: a changed key is an impostor.
    ops("lab", "drift", "host-key-rotated-vm209", timeout=180)
    try:
        html = tmp_path / "r.html"
        proc = ops("lab", "exec", "--", "env", "OPSVERIFY_INSECURE_HOST_KEYS=1", *OPS, "verify",
                   "--html", str(html), "--family", "reachability", check=False, timeout=300)
    finally:
        ops("lab", "reset", timeout=300)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    page = html.read_text()
    assert "host key mismatch" in page and "changed keys still refused" in page


def test_an_api_with_a_certificate_from_an_unknown_ca_is_refused(verify, twin, tmp_path) -> None:
    import certifi

    strange = certifi.where()  # public CAs: none of them signed the twin's stand-ins
    out = tmp_path / "r.json"
    proc = ops("lab", "exec", "--", "env", f"OPSVERIFY_CA_BUNDLE={strange}",
               f"SSL_CERT_FILE={strange}", *OPS, "verify", "--json", str(out),
               "--family", "routes", "--family", "decom", "--family", "secrets", check=False,
               timeout=300)
    results = json.loads(out.read_text())
    unreachable = results["unreachable"]
    for source in ("cloudflare", "proxmox", "infisical"):
        assert "certificate" in unreachable.get(source, ""), (source, unreachable)
    assert proc.returncode == 4
    # ...and accepted when TLS checking is explicitly off, which the report shows.
    proc = ops("lab", "exec", "--", "env", f"OPSVERIFY_CA_BUNDLE={strange}",
               "OPSVERIFY_INSECURE_TLS=1", *OPS, "verify", "--json", str(out),
               "--family", "decom", check=False, timeout=300)
    results = json.loads(out.read_text())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert any("TLS" in r for r in results["relaxations"])


LEAKY = ["plaintext-env", "compose-literal-secret", "stale-ip-prowlarr"]


def test_no_secret_reaches_any_output(twin, tmp_path) -> None:
    """Secrets put where they must not be; every output of a run is searched for them."""
    for scenario in LEAKY:
        ops("lab", "drift", scenario, timeout=180)
    out = tmp_path / "out"
    out.mkdir()
    try:
        verify = ops("lab", "exec", "--", *OPS, "verify", "--html", str(out / "r.html"),
                     "--junit-xml", str(out / "r.xml"), "--json", str(out / "r.json"),
                     "--prom", str(out / "r.prom"), "--save-facts", str(out / "facts"),
                     check=False, timeout=300)
        debug = ops("lab", "exec", "--", sys.executable, "-m", "pytest", str(REPO / "gates"),
                    "-q", f"--log-file={out / 'debug.log'}", "--log-file-level=DEBUG",
                    "--log-level=DEBUG", check=False, timeout=300)
        soak = ops("lab", "exec", "--", *OPS, "soak", "--every", "1s", "--for", "2s",
                   "--name", "leak", "--dir", str(out / "soak"), check=False, timeout=300)
        report = ops("soak", "report", "leak", "--dir", str(out / "soak"),
                     "--html", str(out / "soak.html"), check=False, timeout=120)
    finally:
        ops("lab", "reset", timeout=300)
    assert verify.returncode == 1, verify.stdout + verify.stderr
    secrets = list(twin["canaries"])
    for standin in twin["standins"].values():
        secrets += [v for k, v in _flat(standin) if "token" in k or "secret" in k]
    secrets = [s for s in secrets if s and len(s) >= 6]
    assert len(secrets) > 10
    texts = {"terminal": verify.stdout + verify.stderr + debug.stdout + debug.stderr
             + soak.stdout + soak.stderr + report.stdout + report.stderr}
    texts |= {str(p.relative_to(out)): p.read_text(errors="replace")
              for p in out.rglob("*") if p.is_file()}
    assert {"r.html", "r.xml", "r.json", "r.prom", "debug.log", "soak.html"} <= set(texts)
    assert any(k.startswith("facts/") for k in texts) and any(k.startswith("soak/") for k in texts)
    leaks = [(name, s[:4] + "…") for name, text in texts.items() for s in secrets if s in text]
    assert not leaks, f"secret values found in outputs: {leaks}"


def _flat(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(obj, dict):
        return [kv for k, v in obj.items() for kv in _flat(v, f"{prefix}{k}.".lower())]
    return [(prefix, obj)] if isinstance(obj, str) else []

