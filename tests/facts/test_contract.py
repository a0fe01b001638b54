"""The facts contract: real facts keep it; a wrong shape is named (file, JSON path, type), never
its value, and never a traceback -- when collected, when saved and when replayed."""

from __future__ import annotations

import copy
import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from facts import test_api_apis as apis
from jsonschema import Draft202012Validator
from verify.opsrun import CLEAN, SSOT, facts_dir, ops

from opsverify.facts import contract
from opsverify.facts import saved as saved_files
from opsverify.facts import store as store_mod
from opsverify.facts.contract import FactsContractError
from opsverify.facts.saved import FactsFileError
from opsverify.facts.store import FactStore
from opsverify.verdict import Unreachable

ssot, world = apis.ssot, apis.world  # fixtures: the SSOT, and its APIs on 127.0.0.1
SAMPLES = Path(__file__).resolve().parents[1] / "samples"
PLANTED = "planted-value-4f1e9c"  # must never be shown: facts may hold what a secret looked like


# --- the schemas ----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(contract.SCHEMAS))
def test_each_schema_is_a_valid_draft_2020_12_schema(kind: str) -> None:
    doc = contract.schema(kind)
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(doc)


def test_every_generated_source_keeps_the_contract() -> None:
    assert {contract.kind_of(s) for s in CLEAN} == {"host", *contract.API_SOURCES}
    assert {s: contract.problem(s, d) for s, d in CLEAN.items()} == dict.fromkeys(CLEAN)


def _one_of_each(doc: Any) -> Any:
    """doc with every list cut to its first item: each shape once, the variants below few."""
    if isinstance(doc, dict):
        return {k: _one_of_each(v) for k, v in doc.items()}
    return [_one_of_each(x) for x in doc[:1]] if isinstance(doc, list) else doc


def _variants(doc: Any, node: Any = None, path: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    """(path, doc changed there): each value replaced by other JSON types, or removed; the
    change is made in place and undone after the caller has looked."""
    node = doc if node is None else node
    for k in list(node) if isinstance(node, dict) else range(len(node)):
        before = node[k]
        for change in ([], None, "x", 1.5, 7, True, {}):
            node[k] = change
            yield (*path, k), doc
        if isinstance(node, dict):
            del node[k]
            yield (*path, k, "removed"), doc
        node[k] = before
        if isinstance(before, dict | list):
            yield from _variants(doc, before, (*path, k))


@pytest.mark.parametrize("source", sorted(CLEAN))
def test_the_fast_check_agrees_with_jsonschema(source: str) -> None:
    """The compiled yes/no check says exactly what jsonschema says, for every one-place change
    of a clean document (it decides alone whether jsonschema is asked where)."""
    kind = contract.kind_of(source)
    fast, full = contract.fast_check(kind), contract.validator(kind)
    doc, n = _one_of_each(CLEAN[source]), 0
    for path, changed in _variants(doc):
        n += 1
        valid = full.is_valid(changed)
        assert fast(changed) == valid, (source, path)
        if not valid:  # and every break is named at a path
            assert contract.problem(source, changed).startswith("$"), (source, path)
    assert n > 50 and doc == _one_of_each(CLEAN[source])


# --- real facts -----------------------------------------------------------------------------

class FakeEngine:
    """The Docker Engine API on a unix socket, answering with the inspect samples."""

    def __init__(self, path: Path, samples: list[str]):
        self.docs = {d["Id"]: d for d in (json.loads((SAMPLES / s).read_text())
                                           for s in samples)}
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(8)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                target = conn.recv(65536).decode().split(" ")[1]
                if target.startswith("/containers/json"):
                    body: Any = [{"Id": i} for i in self.docs]
                else:
                    body = self.docs.get(target.split("/")[2])
                status = "200 OK" if body is not None else "404 Not Found"
                data = json.dumps(body or {"message": "no such container"}).encode()
                conn.sendall(f"HTTP/1.0 {status}\r\nContent-Type: application/json\r\n"
                             f"Content-Length: {len(data)}\r\n\r\n".encode() + data)

    def close(self) -> None:
        self.sock.close()


def _sample_tree(tmp: Path) -> dict[str, Any]:
    """Fact script parameters over a tree built from the samples: /proc/mounts, /etc/fstab,
    a stack with a plaintext .env and a compose file, a config file, a retired address."""
    stack = tmp / "stack"
    stack.mkdir()
    (stack / ".env").write_text("RADARR_API_KEY=x\n")
    (stack / "docker-compose.yml").write_text(
        "services:\n  radarr:\n    environment:\n      - RADARR_API_KEY=${RADARR_API_KEY}\n")
    (stack / "app.conf").write_text("upstream = http://100.117.1.53:7878\n")
    shutil.copy(SAMPLES / "jellyseerr_settings_json_RECONSTRUCTED.json", stack / "settings.json")
    return {"host": "lab", "secret_name": r"(?i)(api[_-]?key|secret|password)",
            "files": {"mounts": str(SAMPLES / "proc_mounts_homelab_RECONSTRUCTED.txt"),
                      "fstab": str(SAMPLES / "fstab_homelab_RECONSTRUCTED.txt"),
                      "docker_socket": str(tmp / "docker.sock")},
            "zfs": True, "pinned_env": {"portainer": ["PATH"]},
            "stacks": {"s": {"directory": str(stack), "compose": str(stack / "docker-compose.yml"),
                             "roots": [str(stack)], "generated": []}},
            "mount_paths": [], "secret_keys": ["RADARR_API_KEY"], "plaintext_globs": [".env"],
            "retired": ["100.117.1.53"], "config_roots": [str(stack)],
            "config_checks": [{"name": "jellyseerr->radarr", "file": str(stack / "settings.json"),
                               "format": "json",
                               "keys": ["radarr.*.hostname", "main.applicationUrl"],
                               "table": None, "row": {}, "container": None}]}


def test_host_facts_of_the_real_fact_script_keep_the_contract(tmp_path: Path) -> None:
    """The fact script over a real sshd on 127.0.0.1, through the store, saved and replayed."""
    from facts.test_host_collect import SSHD, Sshd

    from opsverify.facts.hosts import collect

    if not (os.path.exists(SSHD) and shutil.which("ssh-keygen") and os.geteuid() == 0):
        pytest.skip("needs root, /usr/sbin/sshd and ssh-keygen (openssh-server)")
    params = _sample_tree(tmp_path)
    engine = FakeEngine(tmp_path / "docker.sock",
                        ["docker_inspect_container_healthcheck.json",
                         "docker_inspect_portainer_running_watchtower.json"])
    (tmp_path / "ssh").mkdir()
    sshd = Sshd(tmp_path / "ssh").start()
    try:
        store = FactStore({"host:lab": lambda: collect(sshd.target, params, sshd.settings())},
                          deadline=10, save_dir=tmp_path / "saved", contract=True)
        store.prefetch(["host:lab"])
        store.save()
    finally:
        sshd.stop()
        engine.close()
    assert store.unreachable() == {} and store.broken() == {}
    facts = store.get("host:lab")
    # every section really filled: the shapes checked are the collectors' own
    assert len(facts["docker"]["containers"]) == 2 and facts["docker"]["ok"]
    assert facts["mounts"] and facts["fstab"] and facts["stale_refs"]
    assert facts["stacks"]["s"]["plaintext_files"] and facts["stacks"]["s"]["compose"]["secrets"]
    assert facts["config"]["jellyseerr->radarr"]["ok"], facts["config"]
    assert "transport" in facts and "remote_s" in facts and "zfs" in facts
    assert saved_files.check_dir(tmp_path / "saved") == []
    replay = FactStore({}, deadline=5, replay_dir=tmp_path / "saved", contract=True)
    assert replay.get("host:lab") == json.loads((tmp_path / "saved" / "host-lab.json").read_text())


def test_api_facts_of_the_real_collectors_keep_the_contract(
        ssot: Any, world: Any, tmp_path: Path) -> None:
    """All five API collectors against loopback stand-ins of the real APIs, through the store."""
    from api_servers import Loopback

    from opsverify.facts.api_client import make_client, tls_verify
    from opsverify.facts.apis import api_collectors
    from opsverify.settings import Settings

    origins, ca = world
    settings = Settings.from_env(apis.ENV, timeout=3, ca_bundle=ca.ca)
    client = make_client(settings, transport=Loopback(origins, verify=tls_verify(settings)))
    saved = tmp_path / "saved"
    store = FactStore(api_collectors(ssot, settings, client=client, env={}), deadline=3,
                      save_dir=saved, contract=True)
    store.prefetch(store.sources)
    store.save()
    assert store.unreachable() == {} and store.broken() == {}
    assert sorted(p.name for p in saved.glob("*.json")) == [
        f"{s}.json" for s in sorted(contract.API_SOURCES)]
    assert saved_files.check_dir(saved) == []


def test_validating_a_whole_run_costs_a_few_ms() -> None:
    """Every source of a run (3 hosts, 5 APIs), validators compiled once beforehand."""
    for kind in contract.SCHEMAS:
        contract.validator(kind), contract.fast_check(kind)
    best = min(_timed(lambda: [contract.problem(s, d) for s, d in CLEAN.items()])
               for _ in range(5))
    size = len(json.dumps(CLEAN)) // 1024
    print(f"\nfacts contract: {len(CLEAN)} sources ({size} KiB) validated in {best * 1000:.2f} ms")
    assert best < 0.05  # a guard against a pathological schema, not a speed target


def _timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# --- enforced where facts are collected -------------------------------------------------------

def _host(**change: Any) -> dict[str, Any]:
    doc = copy.deepcopy(CLEAN["host:vm209"])
    doc.update(change)
    return doc


def test_a_collector_of_the_wrong_shape_is_an_error_naming_path_and_type(tmp_path: Path) -> None:
    bad = _host()
    bad["docker"]["containers"][0]["restart_count"] = PLANTED
    store = FactStore({"host:vm209": lambda: bad, "host:vm210": lambda: _host(),
                       "proxmox": lambda: {"node": "pve"}, "http": lambda: [PLANTED]},
                      deadline=5, save_dir=tmp_path, contract=True)
    store.prefetch(store.sources)
    assert store.get("host:vm210")["hostname"] == "download-stack"  # the others untouched
    assert store.unreachable() == {}
    with pytest.raises(FactsContractError) as err:
        store.get("host:vm209")
    assert str(err.value) == ("host:vm209: its collector's facts break the contract at "
                              "$.docker.containers[0].restart_count: expected integer, "
                              "got string")
    with pytest.raises(FactsContractError, match=r"^proxmox: .* at \$\.vms: required, missing$"):
        store.get("proxmox")
    with pytest.raises(FactsContractError, match=r"\$: expected object, got array$"):
        store.get("http")
    # saved as an error record, which keeps the contract and replays as the same ERROR
    store.save()
    saved = json.loads((tmp_path / "host-vm209.json").read_text())
    assert saved == {"error": str(err.value).removeprefix("host:vm209: ")}
    assert saved_files.check_dir(tmp_path) == []
    assert PLANTED not in "".join(p.read_text() for p in tmp_path.iterdir())
    replay = FactStore({}, deadline=5, replay_dir=tmp_path, contract=True)
    with pytest.raises(FactsContractError, match="restart_count: expected integer"):
        replay.get("host:vm209")
    assert replay.get("host:vm210")["hostname"] == "download-stack"


def test_unreachable_and_error_records_keep_the_contract(tmp_path: Path) -> None:
    def down() -> dict:
        raise Unreachable("host:vm209", "ssh: connection refused")

    store = FactStore({"host:vm209": down}, deadline=5, save_dir=tmp_path, contract=True)
    store.prefetch(store.sources)
    store.save()
    assert json.loads((tmp_path / "host-vm209.json").read_text()) == {
        "unreachable": "ssh: connection refused"}
    for record in ({"unreachable": "ssh: timeout"}, {"error": "its facts broke it"}):
        assert contract.problem("host:vm209", record) is None
        assert contract.problem("http", record) is None
    assert contract.problem("http", {"unreachable": ""}) == \
        "$.unreachable: expected a non-empty string, got an empty one"
    assert contract.problem("http", {"unreachable": "a", "error": "b"}).startswith(
        "$: expected a record with one key")


def test_a_document_broken_as_written_is_saved_as_an_error_record(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Checked again as saved: masking and JSON's own conversions come after collection."""
    store = FactStore({"host:vm209": lambda: _host()}, deadline=5, save_dir=tmp_path,
                      contract=True)
    store.prefetch(store.sources)
    monkeypatch.setattr(store_mod, "scrub_obj", lambda doc: {**doc, "mounts": {}})
    store.save()
    assert json.loads((tmp_path / "host-vm209.json").read_text()) == {
        "error": "saved facts break the contract at $.mounts: expected array, got object"}


def test_without_the_contract_the_store_takes_any_object(tmp_path: Path) -> None:
    store = FactStore({"cloudflare": lambda: {"zone": {}}}, deadline=2, save_dir=tmp_path)
    store.prefetch(store.sources)
    assert store.get("cloudflare") == {"zone": {}}


# --- enforced where facts are replayed --------------------------------------------------------

def _wrong_type(f: dict) -> None:
    f["host:vm209"]["docker"]["containers"][0]["restart_count"] = PLANTED


BAD: dict[str, tuple[Any, str, str]] = {
    "missing-section": (lambda f: f["host:vm210"].pop("mounts"), "host-vm210.json",
                        "host:vm210 facts break the contract at $.mounts: required, missing"),
    "wrong-type": (_wrong_type, "host-vm209.json",
                   "at $.docker.containers[0].restart_count: expected integer, got string"),
    "wrong-type-in-a-map": (
        lambda f: f["proxmox"]["vms"]["201"].update(onboot=[PLANTED]), "proxmox.json",
        '$.vms["201"].onboot: expected integer or null, got array'),
    "top-level-array": (lambda f: f.update(http=[PLANTED]), "http.json",
                        "http facts break the contract at $: expected object, got array"),
    "bad-record": (lambda f: f.update(infisical={"unreachable": 42}), "infisical.json",
                   "at $.unreachable: expected string, got integer"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_saved_file_of_the_wrong_shape_names_file_path_and_type(case: str, tmp_path: Path
                                                                  ) -> None:
    change, name, message = BAD[case]
    d = facts_dir(tmp_path / "facts", change)
    with pytest.raises(FactsFileError) as err:
        saved_files.load_file(d / name)
    assert str(err.value).startswith(f"{d / name}: ") and message in str(err.value)
    assert PLANTED not in str(err.value)
    # the gates' own replay (pytest gates/ --facts DIR): an ERROR naming the file and the path
    store = FactStore({}, deadline=5, replay_dir=d, contract=True)
    source = contract.source_of(name)
    with pytest.raises(FactsContractError) as got:
        store.get(source)
    assert str(d / name) in str(got.value) and message.split(" at ")[-1] in str(got.value)


@pytest.mark.parametrize(("text", "why"), [
    (b"{\"hostname\": ", "not JSON (line 1 column 14: Expecting value)"),
    (b"", "not JSON (line 1 column 1: Expecting value)"),
    (b"\xff\xfe{}", "not JSON (not UTF-8 text at byte 0)")], ids=["truncated", "empty", "binary"])
def test_a_file_that_is_not_json_is_named(text: bytes, why: str, tmp_path: Path) -> None:
    (tmp_path / "host-vm209.json").write_bytes(text)
    with pytest.raises(FactsFileError, match="^" + str(tmp_path / "host-vm209.json") + ": "):
        saved_files.load_file(tmp_path / "host-vm209.json")
    assert saved_files.check_dir(tmp_path) == [f"{tmp_path / 'host-vm209.json'}: {why}"]


def test_files_of_no_known_source_are_left_alone(tmp_path: Path) -> None:
    d = facts_dir(tmp_path / "facts")
    (d / "notes.json").write_text("not json at all")
    (d / "README").write_text("x")
    assert saved_files.check_dir(d) == []
    assert contract.source_of("host-media-stack.json") == "host:media-stack"
    assert contract.source_of("results.json") is None


@pytest.mark.parametrize("case", ["missing-section", "wrong-type", "not-json"])
def test_ops_verify_refuses_a_bad_facts_dir_as_a_usage_error(case: str, tmp_path: Path) -> None:
    if case == "not-json":
        d = facts_dir(tmp_path / "facts")
        (d / "cloudflare.json").write_text("{'zone': " + PLANTED)
        expected = f"{d / 'cloudflare.json'}: not JSON (line 1 column 2: Expecting property name"
    else:
        change, name, message = BAD[case]
        d = facts_dir(tmp_path / "facts", change)
        expected = f"{d / name}: " + ("host:vm209 facts break the contract " + message
                                      if case == "wrong-type" else message)
    p = ops("verify", "--facts", d, "--json", tmp_path / "r.json")
    assert p.returncode == 2, p.stdout + p.stderr
    assert p.stderr.startswith(f"ops verify: --facts: {expected}"), p.stderr
    assert "Traceback" not in p.stdout + p.stderr and PLANTED not in p.stdout + p.stderr
    assert not (tmp_path / "r.json").exists()  # no gate ran


def test_ops_verify_replays_clean_and_record_files(tmp_path: Path) -> None:
    d = facts_dir(tmp_path / "facts",
                  lambda f: f.update(proxmox={"unreachable": "PVE: connection refused"}))
    p = ops("verify", "--facts", d, "--family", "decom", "-q")
    assert p.returncode == 4, p.stdout + p.stderr
    assert "Traceback" not in p.stdout + p.stderr


def test_a_source_whose_saved_record_is_an_error_is_an_error_not_unreachable(
        tmp_path: Path) -> None:
    reason = "its collector's facts break the contract at $.vms: required, missing"
    d = facts_dir(tmp_path / "facts", lambda f: f.update(proxmox={"error": reason}))
    p = ops("verify", "--facts", d, "--family", "decom", "--json", tmp_path / "r.json", "-q")
    assert p.returncode == 1, p.stdout + p.stderr
    tests = json.loads((tmp_path / "r.json").read_text())["tests"]
    [decom] = [t for t in tests if t["family"] == "decom"]
    assert decom["outcome"] == "error"
    assert decom["message"] == f"FactsContractError: proxmox: {reason}"
    assert "Traceback" not in p.stdout + p.stderr
    assert SSOT.decommissions
