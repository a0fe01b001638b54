"""secrets: no plaintext secrets on the stack hosts, ${VAR} only in compose, keys in Infisical."""

from __future__ import annotations

from fixtures.evidence import Evidence
from opsverify.facts.store import FactStore
from opsverify.families import secrets
from opsverify.findings import conclude
from opsverify.ssot.model import SecretPath, Ssot, Stack


def test_stack_secrets(stack: Stack, ssot: Ssot, facts: FactStore, evidence: Evidence) -> None:
    """No plaintext secrets file in the stack directory or a config root but a declared
    generated .env; compose references secrets only."""
    conclude(secrets.check_stack(stack, facts.get(f"host:{stack.host}"), ssot.generated_env),
             evidence)


def test_infisical_path(secret_path: SecretPath, facts: FactStore, evidence: Evidence) -> None:
    """Every SSOT key exists at its Infisical path."""
    conclude(secrets.check_path(secret_path, facts.get("infisical")), evidence)
