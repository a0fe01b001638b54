"""The head start (opsverify/facts/live.py): a forked child collects while pytest starts, and
the parent's store holds afterwards what an in-process collection would have held."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from opsverify import redact
from opsverify.facts import live
from opsverify.facts.store import FactStore
from opsverify.ssot import load
from opsverify.verdict import Unreachable

REPO = Path(__file__).resolve().parents[2]

# Run in a fresh interpreter: fork() is refused in a process with other threads (as pytest's
# may have, left by earlier tests), and the child must not inherit this test session.
CHILD = """
import json, os, sys, time
sys.path.insert(0, {repo!r})
from opsverify import redact
from opsverify.facts import live
from opsverify.facts.store import FactStore
from opsverify.settings import Settings
from opsverify.ssot import load
from opsverify.verdict import Unreachable

def fake(ssot, settings, record=None):
    {setup}
    def host():
        record("vm209", "python3 -c ...", "host facts: one command per run")
        redact.register("child-only-secret-4711")
        return {{"seen": "child-only-secret-4711 in a header", "pid": os.getpid()}}
    def down():
        raise Unreachable("proxmox", "cannot connect to 192.168.1.184:8006: refused")
    def crash():
        {crash}
        return {{"ok": 1}}
    return {{"custom": host, "proxmox": down, "http": lambda: {{"wrong": "shape"}},
             "crash": crash}}

live.collectors = fake
live.selected_sources = lambda ssot, families, hosts: {sources!r}
head = live.HeadStart.begin(load(), Settings(timeout={timeout}), [], [])
assert head is not None
child = head.pid
started = time.monotonic()
found = head.result()
took = time.monotonic() - started
store = FactStore({{}}, deadline=1, contract=True)
if found is not None:
    store.adopt(found)
print(json.dumps({{
    "adopted": found is not None, "took": took, "parent": os.getpid(),
    "facts": store.collected(), "unreachable": store.unreachable(), "broken": store.broken(),
    "commands": store.remote_commands,
    "scrubbed": redact.scrub("child-only-secret-4711"),
    "reaped": not os.path.exists(f"/proc/{{child}}")}}))
"""


def run_child(crash: str = "pass", timeout: float = 5, setup: str = "pass",
              sources: tuple[str, ...] = ("custom", "proxmox", "http", "crash")) -> dict:
    code = CHILD.format(repo=str(REPO), crash=crash, timeout=timeout, sources=list(sources),
                        setup=setup)
    p = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                       text=True, timeout=120, cwd=REPO, check=False)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_the_parent_holds_what_the_child_collected() -> None:
    got = run_child()
    assert got["adopted"]
    custom = got["facts"]["custom"]
    assert custom["pid"] != got["parent"]  # collected in the child
    assert got["facts"]["crash"] == {"ok": 1}
    assert got["unreachable"] == {"proxmox": "cannot connect to 192.168.1.184:8006: refused"}
    assert list(got["broken"]) == ["http"]  # the contract was checked where collected
    assert got["commands"] == [{"host": "vm209", "purpose": "host facts: one command per run",
                                "command": "python3 -c ..."}]
    # a secret only the child's collector saw is masked by the parent
    assert got["scrubbed"] == redact.MASK


def test_a_child_that_dies_hands_nothing_over_and_is_reaped() -> None:
    got = run_child(crash="os._exit(3)")
    assert not got["adopted"] and got["facts"] == {} and got["commands"] == []
    assert got["scrubbed"] == "child-only-secret-4711"  # nothing adopted, nothing known
    assert got["reaped"]


def test_a_hung_collector_costs_its_source_only() -> None:
    got = run_child(crash="time.sleep(600)", timeout=0.5)
    assert got["adopted"] and "crash" in got["unreachable"] and "custom" in got["facts"]
    assert got["took"] < 9, got["took"]  # the store's bound: timeout + 5 s


def test_a_child_stuck_outside_its_collectors_is_killed_at_its_limit() -> None:
    # limit: one wave of (timeout + 5) + 5 s; past it the child is killed, the run goes on
    got = run_child(setup="time.sleep(600)", timeout=0.5, sources=("crash",))
    assert not got["adopted"] and got["reaped"]
    assert 10 <= got["took"] < 20, got["took"]


def test_no_head_start_where_it_would_not_be_safe() -> None:
    # pytest's session may run threads (servers of other tests): fork() is then refused
    import threading

    from opsverify.settings import Settings

    stop = threading.Event()
    t = threading.Thread(target=stop.wait, daemon=True)
    t.start()
    try:
        assert live.HeadStart.begin(load(), Settings(), [], []) is None
    finally:
        stop.set()
        t.join()


def test_adopt_keeps_what_the_store_already_decided() -> None:
    store = FactStore({}, deadline=1)
    store._mark("host:vm209", "refused")
    store.adopt(live.Collected(facts={"host:vm209": {"x": 1}, "http": {"y": 2}},
                               broken={"host:vm209": "nope"}))
    assert store.unreachable() == {"host:vm209": "refused"} and store.broken() == {}
    assert store.collected() == {"http": {"y": 2}}
    with pytest.raises(Unreachable):
        store.get("host:vm209")


# What pytest's prefetch asks for: sources_for() over the selected items (fixtures/facts.py).
PYTEST_WANTED = """
import json, sys
import pytest
sys.path.insert(0, {repo!r})

class Wanted:
    def pytest_collection_finish(self, session):
        from fixtures.facts import sources_for
        self.sources = sorted({{s for i in session.items for s in sources_for(i)}})

w = Wanted()
pytest.main([*{paths!r}, "--collect-only", "-qq", "-p", "no:cacheprovider", *{extra!r}],
            plugins=[w])
print(json.dumps(w.sources))
"""


@pytest.mark.parametrize("families, hosts", [
    ([], []), (["mounts"], []), ([], ["vm209"]), (["vms", "wiring"], ["pve", "vm210"]),
    (["ssot"], []), ([], ["vm201"]), (["reachability"], ["vm209"])])
def test_the_child_asks_for_exactly_what_pytest_would(families: list[str],
                                                       hosts: list[str]) -> None:
    paths = [f"gates/test_{f}.py" for f in families] or ["gates"]
    extra = [a for h in hosts for a in ("--opsverify-host", h)]
    code = PYTEST_WANTED.format(repo=str(REPO), paths=paths, extra=extra)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                       timeout=120, check=False)
    assert p.returncode == 0, p.stderr[-2000:]
    pytest_wants = json.loads(p.stdout.strip().splitlines()[-1])
    assert sorted(live.selected_sources(load(), families, hosts)) == pytest_wants


def test_collectors_are_built_by_kind_on_first_use(monkeypatch) -> None:
    from opsverify.facts import apis, hosts
    from opsverify.settings import Settings

    ssot, settings = load(), Settings()
    built: list[str] = []
    real_hosts, real_apis = hosts.host_collectors, apis.api_collectors
    monkeypatch.setattr(hosts, "host_collectors",
                        lambda *a, **k: built.append("hosts") or real_hosts(*a, **k))
    monkeypatch.setattr(apis, "api_collectors",
                        lambda *a, **k: built.append("apis") or real_apis(*a, **k))
    lazy = live.collectors(ssot, settings)
    assert sorted(lazy) == sorted([*real_hosts(ssot, settings), *real_apis(ssot, settings)])
    store = FactStore(lazy, deadline=1)
    store.adopt(live.Collected(facts={"http": {"y": 2}, "host:vm209": {"x": 1}},
                               unreachable={"host:vm210": "refused"}))
    store.prefetch(["http", "host:vm209", "host:vm210"])
    assert store.get("http") == {"y": 2} and built == []  # nothing imported, nothing asked
    assert "proxmox" in lazy and "host:nowhere" not in lazy and built == []
    assert callable(lazy["proxmox"]) and built == ["apis"]  # one kind, built once
    assert callable(lazy["cloudflare"]) and built == ["apis"]


def test_a_verifier_killed_outright_leaves_no_collector_behind() -> None:
    # the child holds none of the parent's pipes (a caller reading to EOF does not wait for
    # it) and ends with the parent (PR_SET_PDEATHSIG), even one killed with SIGKILL
    code = CHILD.format(repo=str(REPO), crash="time.sleep(600)", timeout=30, setup="pass",
                        sources=["crash"]).split("started = time.monotonic()")[0]
    code += "print(child, flush=True)\nos.kill(os.getpid(), 9)\n"
    started = time.monotonic()
    p = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                       text=True, timeout=60, cwd=REPO, check=False)
    assert time.monotonic() - started < 20  # EOF came with the parent's death, not the child's
    child = int(p.stdout.split()[-1])
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{child}") and time.monotonic() < deadline:
        time.sleep(0.05)
    stat = Path(f"/proc/{child}/stat")
    assert not stat.exists() or stat.read_text().split(")")[1].split()[0] == "Z"  # reaped soon
