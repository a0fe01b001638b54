"""The small rules the gates compare by: values, addresses, mount modes, image references."""

from __future__ import annotations

import pytest

from opsverify.families.containers import image_ref
from opsverify.families.decom import when
from opsverify.families.mounts import mode, server_of
from opsverify.families.routes import rule_for
from opsverify.families.stale_refs import place
from opsverify.families.values import canonical, host_of, is_loopback, is_tailscale, mentions, same


@pytest.mark.parametrize(("expected", "actual"), [
    (8096, "8096"), (True, "true"), (True, "True"), (False, "false"), (0.1, "0.1"),
    (8096, 8096.0), (True, 1), ("jellyfin", " jellyfin "),
    ("http://radarr:7878", "http://radarr:7878")])
def test_same_value(expected: object, actual: object) -> None:
    assert same(expected, actual)


@pytest.mark.parametrize(("expected", "actual"), [
    (8096, "8097"), (True, "false"), (True, None), (True, "1"), ("radarr", "Radarr"),
    ("/media/tv", "/media/tv/"), (0, "")])
def test_different_value(expected: object, actual: object) -> None:
    assert not same(expected, actual), canonical(actual)


@pytest.mark.parametrize(("value", "named"), [
    ("http://radarr:7878", "radarr"), ("http://100.123.207.64:8096/jf", "100.123.207.64"),
    ("jellyfin", "jellyfin"), ("127.0.0.1", "127.0.0.1"), ("radarr:7878", "radarr"),
    ("http://[::1]:8096", "::1"), (8096, None), ("8096", None), ("/media/movies", None),
    ("true", "true"), ("two words", None)])
def test_host_of(value: object, named: str | None) -> None:
    assert host_of(value) == named


def test_loopback_and_tailscale() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("jellyfin")
    assert is_tailscale("100.64.0.1") and is_tailscale("100.127.255.254")
    assert not is_tailscale("100.128.0.1") and not is_tailscale("192.168.1.184")
    assert not is_tailscale("pve")


@pytest.mark.parametrize(("text", "hit"), [
    ("http://100.117.1.53:7878", True), ("100.117.1.53", True), ('"100.117.1.53"', True),
    ("100.117.1.530", False), ("1100.117.1.53", False), ("100.117.1.53.4", False),
    ("host 100.117.1.53.", True), ("100.117.1.5", False)])
def test_mentions_whole_address(text: str, hit: bool) -> None:
    assert mentions(text, "100.117.1.53") is hit


@pytest.mark.parametrize(("options", "expected"), [
    (["ro", "relatime"], "ro"), (["rw", "errors=remount-ro"], "rw"),
    (["errors=remount-ro"], "rw"), (["defaults"], "rw"), (["rw", "ro"], "ro"),
    (["noatime", "ro"], "ro")])
def test_mount_mode_from_parsed_options(options: list[str], expected: str) -> None:
    assert mode(options) == expected


def test_nfs_server_of_source() -> None:
    assert server_of("192.168.1.184:/media") == "192.168.1.184"
    assert server_of("[fd7a::1]:/media") == "fd7a::1"
    assert server_of("/dev/sda1") == "/dev/sda1"


@pytest.mark.parametrize(("a", "b"), [
    ("nginx", "docker.io/library/nginx:latest"), ("prom/node-exporter", "prom/node-exporter:latest"),
    ("ghcr.io/ajnart/homarr:latest", "ghcr.io/ajnart/homarr"),
    ("localhost:5000/app", "localhost:5000/app:latest")])
def test_image_reference_equivalence(a: str, b: str) -> None:
    assert image_ref(a) == image_ref(b)


def test_image_reference_difference() -> None:
    assert image_ref("ghcr.io/ajnart/homarr:latest") != image_ref("ghcr.io/homarr-labs/homarr")
    assert image_ref("radarr@sha256:abc") != image_ref("radarr")


def test_ingress_rule_order_wildcards_and_paths() -> None:
    ingress = [{"hostname": "jellyfin.ronny.works", "path": "/api", "service": "a"},
               {"hostname": "*.ronny.works", "path": None, "service": "b"},
               {"hostname": "jellyfin.ronny.works", "path": None, "service": "c"},
               {"hostname": None, "path": None, "service": "http_status:404"}]
    assert rule_for(ingress, "jellyfin.ronny.works") == (1, ingress[1])
    assert rule_for(ingress, "example.org") == (3, ingress[3])
    assert rule_for([], "example.org") is None


def test_stale_places_never_quote_content() -> None:
    assert place({"file": "/a.xml", "line": 3}) == "/a.xml line 3"
    assert place({"file": "/p.db", "table": "Applications", "row": 1, "column": "Settings",
                  "line": None}) == "/p.db (Applications id 1, column Settings)"
    assert place({"file": "/bin.dat", "line": None}) == "/bin.dat"


def test_when_reads_iso_times_as_utc() -> None:
    assert when("2026-02-12T14:38:00Z") == when("2026-02-12T15:38:00+01:00")
    assert when("2026-02-12T14:38:00").tzinfo is not None
