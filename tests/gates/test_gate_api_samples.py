"""API-side gate logic (issue 10) on facts built from real answer samples by the real parsers:
each check fails with the drift in the answer and passes without it."""

from __future__ import annotations

import json
from typing import Any

import pytest
import samples

from opsverify.facts import api_cloudflare, api_infisical
from opsverify.families import routes, secrets
from opsverify.ssot.model import Route, SecretPath

STREAMING = SecretPath("/apps/streaming", "streaming-stack",
                       ("JELLYFIN_API_KEY", "NAVIDROME_USER", "NAVIDROME_PASSWORD"))


def infisical_facts(answer: dict[str, Any]) -> dict[str, Any]:
    return {"paths": {STREAMING.path: api_infisical.parse_secret_keys(answer)}}


def test_keys_through_an_import_pass_and_name_their_source() -> None:
    answer = samples.load_json("infisical_v3_secrets_raw_with_imports_RECONSTRUCTED.json")
    check = secrets.check_path(STREAMING, infisical_facts(answer))
    assert check.problems == []
    seen = check.seen["infisical"]
    assert seen["imported_from"] == {"NAVIDROME_PASSWORD": ["prod:/shared"],
                                     "NAVIDROME_USER": ["prod:/shared"]}
    assert "<hidden-by-infisical>" not in json.dumps(check.seen)


def test_without_the_import_the_keys_are_missing() -> None:
    answer = samples.load_json("infisical_v3_secrets_raw_with_imports_RECONSTRUCTED.json")
    answer.pop("imports")  # what the old query (no include_imports) got back
    check = secrets.check_path(STREAMING, infisical_facts(answer))
    assert check.problems == ["missing keys: NAVIDROME_USER, NAVIDROME_PASSWORD"]


def test_an_empty_import_is_named_when_keys_are_missing() -> None:
    answer = samples.load_json("infisical_v3_secrets_raw_with_imports_RECONSTRUCTED.json")
    answer["imports"] = answer["imports"][1:]  # only the import that offers no key
    check = secrets.check_path(STREAMING, infisical_facts(answer))
    assert check.problems == [("missing keys: NAVIDROME_USER, NAVIDROME_PASSWORD (imports with "
                              "no key this identity may read: staging:/apps/streaming)")]


ROUTE = Route("test.example.com", "host", 8000, "https://localhost:8000", 200, None)


def cloudflare_facts(name: str) -> dict[str, Any]:
    tunnel = api_cloudflare.parse_tunnel_config(samples.load_json(name))
    return {"tunnel": {"id": "t", **tunnel}, "dns": []}


@pytest.mark.parametrize("gate", [
    lambda cf: routes.check_catch_all("http_status:404", cf),
    lambda cf: routes.check_retired({"100.117.1.53": "VM 201"}, cf),
    lambda cf: routes.check(ROUTE, "t", cf, {"routes": {}})])
def test_a_locally_managed_tunnel_says_so(gate: Any) -> None:
    local = gate(cloudflare_facts("cloudflare_tunnel_configurations_local_null_RECONSTRUCTED.json"))
    assert routes.NO_REMOTE in local.problems
    assert not any("got no rules" in p or "no rule for" in p for p in local.problems)
    remote = gate(cloudflare_facts("cloudflare_tunnel_configurations_get.json"))
    assert routes.NO_REMOTE not in remote.problems


def test_the_remote_sample_has_its_catch_all() -> None:
    facts = cloudflare_facts("cloudflare_tunnel_configurations_get.json")
    assert routes.check_catch_all("http_status:404", facts).problems == []
    assert routes.check_catch_all("http_status:503", facts).problems == [
        "catch-all service: expected http_status:503, got http_status:404"]
