"""containers: each SSOT container on its host's engine as the SSOT says; nothing extra runs."""

from __future__ import annotations

from fixtures.evidence import Evidence
from opsverify.facts.store import FactStore
from opsverify.families import containers
from opsverify.findings import conclude
from opsverify.ssot.model import Container, Ssot


def test_container(container: Container, facts: FactStore, evidence: Evidence) -> None:
    """Present; running or intentionally stopped; not restarting, nor restarted recently or since
    the previous saved run; healthy; image; published ports; pinned env."""
    source = f"host:{container.host}"
    host = facts.get(source)
    conclude(containers.check(container, host, facts.previous(source)), evidence)


def test_no_unlisted_container(docker_host: str, ssot: Ssot, facts: FactStore, evidence: Evidence) -> None:
    """No running container on the host that the SSOT does not list for it."""
    host = facts.get(f"host:{docker_host}")
    conclude(containers.check_host(docker_host, ssot.containers, host), evidence)
