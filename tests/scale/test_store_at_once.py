"""FactStore at scale: at most AT_ONCE sources at once, each timed from its own start, so a
hundred hosts never wait out each other's timeouts; a hung source costs one worker."""

from __future__ import annotations

import threading
import time

import pytest

from opsverify.facts import store as store_mod
from opsverify.facts.store import FactStore
from opsverify.verdict import Unreachable


@pytest.mark.parametrize("at_once", [None, 8, 2])  # None: AT_ONCE; else --parallel N
def test_a_hundred_sources_never_run_more_than_at_once(at_once: int | None) -> None:
    running, peak, lock = [0], [0], threading.Lock()

    def collector(i: int):
        def collect() -> dict:
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            time.sleep(0.05)
            with lock:
                running[0] -= 1
            return {"i": i}
        return collect

    s = FactStore({f"host:h{i}": collector(i) for i in range(100)}, deadline=5)
    s.prefetch(s.sources, at_once=at_once)
    assert peak[0] == (at_once or store_mod.AT_ONCE)
    assert all(s.get(f"host:h{i}") == {"i": i} for i in range(100))


def test_each_source_is_timed_from_its_own_start(monkeypatch) -> None:
    monkeypatch.setattr(store_mod, "AT_ONCE", 4)

    def slow() -> dict:
        time.sleep(0.4)  # 20 of them, 4 at once: 2 s in all, more than the 1 s deadline
        return {}

    s = FactStore({f"host:h{i}": slow for i in range(20)}, deadline=1)
    s.prefetch(s.sources)
    assert s.unreachable() == {}


def test_a_hung_source_is_unreachable_and_the_others_finish(monkeypatch) -> None:
    monkeypatch.setattr(store_mod, "AT_ONCE", 2)
    release = threading.Event()
    sources = {f"host:h{i}": dict for i in range(6)}
    sources["host:hung"] = lambda: release.wait(30) and {}
    s = FactStore(sources, deadline=0.5)
    t0 = time.monotonic()
    s.prefetch(s.sources)
    try:
        assert time.monotonic() - t0 < 8  # one timeout (+5 s of grace), not one per source
        assert list(s.unreachable()) == ["host:hung"]
        with pytest.raises(Unreachable, match="no answer within"):
            s.get("host:hung")
    finally:
        release.set()
