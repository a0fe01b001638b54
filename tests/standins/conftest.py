"""Fixtures of the stand-in tests: servers on loopback, the vendors' format samples."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import samples

from opsverify.lab.standins import _http


def key_gaps(sample: Any, actual: Any, where: str = "$", keyed: tuple[str, ...] = ()) -> list[str]:
    """Paths of keys the sample has and `actual` lacks, recursively (lists: first items).

    `keyed` names maps whose keys are instance data (nodekeys, disk names): there every
    value of `actual` is checked against the sample's first value.
    """
    if isinstance(sample, dict):
        if not isinstance(actual, dict):
            return [f"{where}: not an object"]
        if where in keyed:
            if not sample or not actual:
                return []
            first = next(iter(sample.values()))
            return [g for k, v in actual.items() for g in key_gaps(first, v, f"{where}.{k}", keyed)]
        gaps = []
        for key, value in sample.items():
            if key not in actual:
                gaps.append(f"{where}.{key}")
            else:
                gaps += key_gaps(value, actual[key], f"{where}.{key}", keyed)
        return gaps
    if isinstance(sample, list) and sample and isinstance(sample[0], dict):
        if not isinstance(actual, list) or not actual:
            return [f"{where}: no items to compare"]
        return key_gaps(sample[0], actual[0], f"{where}[0]", keyed)
    return []


@pytest.fixture
def gaps() -> Callable[..., list[str]]:
    """The key_gaps function."""
    return key_gaps


@pytest.fixture
def sample() -> Callable[[str], Any]:
    """Load one format sample (JSON) from tests/samples by file name."""
    return samples.load_json


@pytest.fixture
def serve() -> Iterator[Callable[..., str]]:
    """Start an App on 127.0.0.1 (ephemeral port); returns its base URL; stopped at teardown."""
    servers = []

    def start(app: _http.App, tls: Any = None, log: Any = None) -> str:
        server = _http.start(app, ("127.0.0.1", 0), tls, log)
        servers.append(server)
        return f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        _http.stop(server)


@pytest.fixture(scope="session")
def client_tls() -> ssl.SSLContext:
    """One TLS context for every test client: building one per client costs ~0.1 s."""
    return ssl.create_default_context()


@pytest.fixture
def new_client(client_tls) -> Iterator[Callable[..., httpx.Client]]:
    """Make httpx clients, closed when the test ends."""
    clients: list[httpx.Client] = []

    def make(base_url: str = "", **kwargs: Any) -> httpx.Client:
        clients.append(httpx.Client(base_url=base_url, verify=client_tls, timeout=10, **kwargs))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def http(new_client) -> httpx.Client:
    """A plain client for absolute URLs; never follows redirects."""
    return new_client()
