"""Parsers of host output, on the real samples in tests/samples and on generated garbage."""

from __future__ import annotations

import copy
import json
import re
from datetime import timedelta

import pytest
import samples
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from opsverify.facts.agent import docker, fstab, keypaths, programs, scan, stacks, yaml_subset
from opsverify.facts.agent.primitives import ParseError
from opsverify.redact import SECRET_NAME

FUZZ = settings(max_examples=150, deadline=timedelta(seconds=2),
                suppress_health_check=[HealthCheck.too_slow])


def sample(name: str) -> str:
    return samples.text(name)


# --- /proc/mounts ----------------------------------------------------------------------------

def test_proc_mounts_options_are_a_list_not_a_substring() -> None:
    mounts = {m["target"]: m for m in fstab.parse_proc_mounts(
        sample("proc_mounts_homelab_RECONSTRUCTED.txt"))}
    root = mounts["/"]
    assert "errors=remount-ro" in root["options"] and "ro" not in root["options"]
    assert root["options"][0] == "rw"
    media = mounts["/mnt/media"]
    assert media == {"source": "192.168.20.9:/mnt/media", "target": "/mnt/media",
                     "fstype": "nfs4", "options": media["options"]}
    assert media["options"][:2] == ["ro", "relatime"] and "vers=4.2" in media["options"]
    assert mounts["/mnt/My Media"]["source"] == "/dev/sdb1"  # \040 unescaped


def test_proc_mounts_real_nfs4_line_and_fedora_dump() -> None:
    [line] = fstab.parse_proc_mounts(sample("proc_mounts_nfs4_real_line.txt"))
    assert (line["source"], line["target"], line["fstype"]) == \
        ("192.168.20.9:/mnt/local", "/mnt/central", "nfs4")
    fedora = fstab.parse_proc_mounts(sample("proc_mounts_fedora_ansible_fixture.txt"))
    assert len(fedora) == 38
    assert fedora[-1]["source"] == "grimlock.g.a:/mnt/data/foto's"
    assert "ro" in {m["target"]: m for m in fedora}["/sys/fs/cgroup"]["options"]


def test_mountinfo_is_not_taken_for_proc_mounts() -> None:
    with pytest.raises(ParseError, match=r"/proc/mounts line 1: expected 6 fields, got 1\d"):
        fstab.parse_proc_mounts(sample("proc_self_mountinfo_nfs_node_exporter_fixture.txt"))


def test_proc_mounts_escapes_and_truncation() -> None:
    [m] = fstab.parse_proc_mounts(r"a\011b /mnt/x\040y\134z\012 tmpfs ro 0 0" + "\n")
    assert (m["source"], m["target"]) == ("a\tb", "/mnt/x y\\z\n")
    with pytest.raises(ParseError, match="line 2: expected 6 fields, got 3"):
        fstab.parse_proc_mounts("proc /proc proc rw 0 0\nsysfs /sys sys")


# --- /etc/fstab: tests/facts/test_host_mounts.py -----------------------------------------------

# --- tailscale status --json -----------------------------------------------------------------

def test_tailscale_status_sample() -> None:
    status = programs.parse_tailscale_status(sample("tailscale_status_json_RECONSTRUCTED.json"))
    assert status == {"backend_state": "Running", "online": True,
                      "ips": ["100.107.222.96", "fd7a:115c:a1e0::6e39:de61"]}


def test_tailscale_peer_fragment_is_not_a_status() -> None:
    status = programs.parse_tailscale_status(
        sample("tailscale_status_peer_entry_real_fragment.json"))
    assert status == {"backend_state": None, "ips": [], "online": None}


@pytest.mark.parametrize("text, message", [
    ("", "invalid JSON at line 1"), ("[]", "expected a JSON object"),
    ('{"Self": []}', "Self: expected an object"), ('{"TailscaleIPs": [1]}', "list of strings"),
    ('{"BackendState": 3}', "BackendState has type int"),
])
def test_tailscale_status_garbage(text: str, message: str) -> None:
    with pytest.raises(ParseError, match=re.escape(message)):
        programs.parse_tailscale_status(text)


# --- Docker Engine API -----------------------------------------------------------------------

@pytest.fixture
def inspect() -> dict:
    return json.loads(sample("docker_inspect_container_healthcheck.json"))


def test_container_with_healthcheck(inspect: dict) -> None:
    pinned = {"wt-contnet-producer-1": ["VPN_TYPE", "OPENVPN_PASSWORD", "ABSENT"]}
    c = docker.parse_container(json.dumps(inspect), pinned, SECRET_NAME)
    assert c == {
        "name": "wt-contnet-producer-1", "id": inspect["Id"], "image": inspect["Config"]["Image"],
        "state": "running", "restarting": False, "restart_count": 0,
        "started_at": "2023-07-25T14:55:15.193430103Z", "finished_at": "0001-01-01T00:00:00Z",
        "has_healthcheck": True, "health": "healthy",
        "env": {"VPN_TYPE": "openvpn"},  # OPENVPN_PASSWORD names a secret: never read
        # exposed (8000/tcp: null), not published: no port binding
        "network_mode": "wt-contnet_default", "restart_policy": "",
        "ports_configured": [], "ports_published": [],
    }


def test_container_unhealthy_restarting(inspect: dict) -> None:
    doc = copy.deepcopy(inspect)
    doc["State"]["Health"] = json.loads(sample("docker_state_health_unhealthy.json"))
    doc["State"].update(Status="restarting", Restarting=True)
    doc["RestartCount"] = 7
    c = docker.parse_container(doc)
    assert (c["health"], c["state"], c["restarting"], c["restart_count"]) == \
        ("unhealthy", "restarting", True, 7)
    assert c["env"] == {}


def test_container_without_healthcheck(inspect: dict) -> None:
    doc = copy.deepcopy(inspect)
    del doc["State"]["Health"], doc["Config"]["Healthcheck"]
    c = docker.parse_container(doc)
    assert (c["has_healthcheck"], c["health"]) == (False, None)
    doc["Config"]["Healthcheck"] = {"Test": ["NONE"]}  # the image's check switched off
    assert docker.parse_container(doc)["has_healthcheck"] is False


def test_docker_cli_array_and_bad_types_are_refused(inspect: dict) -> None:
    with pytest.raises(ParseError, match="expected a JSON object"):
        docker.parse_container(json.dumps([inspect]))  # `docker inspect` wraps it in a list
    with pytest.raises(ParseError, match="RestartCount has type bool"):
        docker.parse_container({**inspect, "RestartCount": True})
    with pytest.raises(ParseError, match=r"\[1\]: Id is not a container id"):
        docker.parse_container_list('[{"Id": "' + "a" * 64 + '"}, {"Id": "../../x"}]')


def test_http_response_identity_chunked_and_truncated() -> None:
    assert docker.parse_http_response(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n[]") == \
        (200, b"[]")
    chunked = b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    assert docker.parse_http_response(chunked) == (404, b"abc")
    with pytest.raises(ParseError, match="shorter than its Content-Length"):
        docker.parse_http_response(b"HTTP/1.0 200 OK\r\nContent-Length: 9\r\n\r\n[]")
    with pytest.raises(ParseError, match="no status line"):
        docker.parse_http_response(b"garbage")


# --- zfs -------------------------------------------------------------------------------------

def test_zfs_list() -> None:
    assert programs.parse_zfs_list("tank\ntank/docker\ntank/docker/media-stack\n\n") == \
        ["tank", "tank/docker", "tank/docker/media-stack"]
    with pytest.raises(ParseError, match="zfs list line 2"):
        programs.parse_zfs_list("tank\ntank/a\t10G\n")


# --- secrets in compose and .env files -------------------------------------------------------

COMPOSE = """\
services:
  radarr:
    environment:
      - RADARR_API_KEY=${RADARR_API_KEY}
      - "SONARR_API_KEY=s3cr3t-literal"
      - PROWLARR_API_KEY
      - "NAVIDROME_PASSWORD"
      - 'LIDARR_API_KEY=$LIDARR_API_KEY'  # a reference
  jellyfin:
    environment:
      JELLYFIN_API_KEY: "${JELLYFIN_API_KEY}"
      SABNZBD_API_KEY:
      REAL_DEBRID_API_KEY: ${REAL_DEBRID_API_KEY:-s3cr3t-default}
      AUTOPULSE_PASSWORD: ${AUTOPULSE_PASSWORD:?set it}
      RADARR_API_KEY: s3cr3t-second   # the literal wins over line 4's reference
      SPOTIFY_CLIENT_ID: ""
      "LASTFM_API_KEY":
      NOT_IN_SSOT: whatever
"""
KEYS = ["RADARR_API_KEY", "SONARR_API_KEY", "PROWLARR_API_KEY", "LIDARR_API_KEY",
        "JELLYFIN_API_KEY", "SABNZBD_API_KEY", "REAL_DEBRID_API_KEY", "AUTOPULSE_PASSWORD",
        "NAVIDROME_PASSWORD", "SPOTIFY_CLIENT_ID", "LASTFM_API_KEY"]


def test_compose_secrets_kinds_and_lines_never_values() -> None:
    found = stacks.parse_compose_secrets(COMPOSE, KEYS)
    assert found == {
        "RADARR_API_KEY": {"kind": "literal", "line": 15},
        "SONARR_API_KEY": {"kind": "literal", "line": 5},
        "PROWLARR_API_KEY": {"kind": "reference", "line": 6},
        "NAVIDROME_PASSWORD": {"kind": "reference", "line": 7},
        "LIDARR_API_KEY": {"kind": "reference", "line": 8},
        "JELLYFIN_API_KEY": {"kind": "reference", "line": 11},
        "SABNZBD_API_KEY": {"kind": "reference", "line": 12},
        "REAL_DEBRID_API_KEY": {"kind": "literal", "line": 13},
        "AUTOPULSE_PASSWORD": {"kind": "reference", "line": 14},
        "SPOTIFY_CLIENT_ID": {"kind": "literal", "line": 16},  # an empty literal is no reference
        "LASTFM_API_KEY": {"kind": "reference", "line": 17},
    }
    assert "s3cr3t" not in json.dumps(found)


def test_env_file_key_names() -> None:
    text = ("# comment\nexport RADARR_API_KEY=abc\nSONARR_API_KEY=\"x#y\"\nOTHER=1\n"
            "RADARR_API_KEY=b\n")
    assert stacks.assigned_keys(text, KEYS) == ["RADARR_API_KEY", "SONARR_API_KEY"]


# --- stale addresses -------------------------------------------------------------------------

def test_whole_addresses_only() -> None:
    pattern = scan.address_pattern(["100.117.1.53", "100.92.156.118"])
    text = (b"ok http://100.117.1.53:7878\n"
            b"no 100.117.1.530 1100.117.1.53 100.117.1.53.4 5.100.117.1.53\n"
            b"ok (100.92.156.118) and again 100.117.1.53.\n"
            b"\"url\": \"100.117.1.53\", \"dup\": \"100.117.1.53\"\n")
    assert scan.find_addresses(text, pattern) == [
        ("100.117.1.53", 1), ("100.92.156.118", 3), ("100.117.1.53", 3), ("100.117.1.53", 4)]
    assert scan.find_addresses(b"\0bin 100.117.1.53", pattern, text=False) == \
        [("100.117.1.53", None)]
    with pytest.raises(ParseError, match="not an IPv4 address"):
        scan.address_pattern(["100.117.1"])


# --- config values ---------------------------------------------------------------------------

def test_json_values_jellyseerr_and_posterizarr() -> None:
    text = sample("jellyseerr_settings_json_RECONSTRUCTED.json")
    assert keypaths.json_values(text, "jellyfin.ip") == ["jellyfin"]
    assert keypaths.json_values(text, "jellyfin.port") == [8096]
    assert keypaths.json_values(text, "radarr.*.hostname") == ["radarr"]
    assert keypaths.json_values(text, "radarr.0.port") == [7878]
    assert keypaths.json_values(text, "radarr.9.port") == []
    assert keypaths.json_values(text, "nothing.here") == []
    assert keypaths.json_values(text, "jellyfin") == ["<object>"]  # never a subtree
    posterizarr = sample("posterizarr_config_example.json")
    assert len(keypaths.json_values(posterizarr, "JellyfinPart.JellyfinUrl")) == 1


def test_xml_values_collect_every_match_and_ignore_namespaces() -> None:
    options = sample("jellyfin_library_options_xml_RECONSTRUCTED.xml")
    assert keypaths.xml_values(options, "LibraryOptions.PathInfos.MediaPathInfo.Path") == \
        ["/data/media/movies", "/mnt/central/movies"]
    system = sample("jellyfin_system_xml_RECONSTRUCTED.xml")
    assert keypaths.xml_values(system, "ServerConfiguration.IsStartupWizardCompleted") == ["true"]
    assert keypaths.xml_values(system, "ServerConfiguration.MetadataPath") == [""]
    assert keypaths.xml_values(system, "Other.IsStartupWizardCompleted") == []
    assert keypaths.xml_values(sample("jellyfin_system_xml_real_TRUNCATED.xml"),
                              "ServerConfiguration.IsStartupWizardCompleted")
    ns = '<a:Config xmlns:a="urn:x"><a:Url>http://radarr:7878</a:Url></a:Config>'
    assert keypaths.xml_values(ns, "Config.Url") == ["http://radarr:7878"]


def test_xml_refuses_entities_and_names_the_position() -> None:
    bomb = '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xx">]><a>&x;</a>'
    with pytest.raises(ParseError, match="entity declarations are refused"):
        keypaths.xml_values(bomb, "a")
    with pytest.raises(ParseError, match="not well-formed at line 2 column"):
        keypaths.xml_values("<a>\n<b></a>", "a.b")


def test_yaml_recyclarr_template() -> None:
    text = sample("recyclarr_config_template.yml")
    assert yaml_subset.yaml_values(text, "sonarr.series.base_url") == ["http://localhost:8989"]
    assert yaml_subset.yaml_values(text, "sonarr.series.quality_definition") == [None]
    assert yaml_subset.parse_yaml_subset(text) == yaml.safe_load(text)


RECYCLARR = """\
# real-world shape: instances, !env_var tags, lists of mappings at the key's indentation
radarr:
  radarr-main:
    base_url: http://radarr:7878
    api_key: !env_var RADARR_API_KEY
    delete_old_custom_formats: true
    quality_definition:
      type: movie
      preferred_ratio: 0.5
    custom_formats:
    - trash_ids:
        - ed38b889b31be83fda192888e2286d83
        - 90cedc1fea7ea5d11298bebd3d1d3223
      assign_scores_to:
        - name: 'HD Bluray + WEB'
          score: -10000
    tags: [movies, "4k"]
    note: |
      two lines,
      kept
sonarr: {}
"""


def test_yaml_real_world_shapes() -> None:
    doc = yaml_subset.parse_yaml_subset(RECYCLARR)
    main = doc["radarr"]["radarr-main"]
    assert keypaths.values_at(doc, "radarr.*.base_url") == ["http://radarr:7878"]
    assert main["api_key"] == "RADARR_API_KEY"
    assert main["quality_definition"] == {"type": "movie", "preferred_ratio": 0.5}
    assert main["custom_formats"][0]["trash_ids"][1] == "90cedc1fea7ea5d11298bebd3d1d3223"
    assert main["custom_formats"][0]["assign_scores_to"] == [{"name": "HD Bluray + WEB",
                                                             "score": -10000}]
    assert main["tags"] == ["movies", "4k"] and main["note"] == "two lines,\nkept\n"
    assert doc["sonarr"] == {} and main["delete_old_custom_formats"] is True


@pytest.mark.parametrize("text, message", [
    ("a: *anchor\n", "line 1: aliases are not supported"),
    ("a: 1\n---\nb: 2\n", "line 2: several documents"),
    ("a:\n\tb: 1\n", "line 2: tab used for indentation"),
    ("a: [1, [2]]\n", "line 1: nested flow collections"),
    ("a: 'open\n", "line 1: unterminated or invalid quoted scalar"),
    ("a: 1\n  b: 2\n", "line 2: unexpected indentation"),
    ("a: 1\njust text\n", "line 2: expected `key: value`"),
])
def test_yaml_outside_the_subset_is_refused_by_line(text: str, message: str) -> None:
    with pytest.raises(ParseError, match=re.escape(message)):
        yaml_subset.parse_yaml_subset(text)


def test_sqlite_column_json_descent() -> None:
    settings_json = '{\n  "prowlarrUrl": "http://prowlarr:9696",\n  "baseUrl": "http://radarr:7878"}'
    assert keypaths.descend_json(settings_json, ["baseUrl"]) == ["http://radarr:7878"]
    assert keypaths.descend_json(settings_json, []) == [settings_json]
    assert keypaths.descend_json("not json", ["baseUrl"]) == []


def test_key_paths() -> None:
    assert keypaths.split_path("a.*.0") == ["a", "*", "0"]
    for bad in ("", "a..b", ".a", "a." + "b." * 70 + "c"):
        with pytest.raises(ParseError):
            keypaths.split_path(bad)


def test_deep_nesting_is_a_parse_error_not_a_recursion_error() -> None:
    with pytest.raises(ParseError, match="nested too deeply"):
        keypaths.json_values("[" * 100_000, "a")
    with pytest.raises(ParseError, match="nested deeper than"):
        yaml_subset.parse_yaml_subset("".join(" " * i + f"k{i}:\n" for i in range(200)))


# --- properties: garbage in, ParseError (a ValueError) out, never anything else ---------------

def _samples() -> list[str]:
    return [p.read_text(errors="replace") for p in sorted(samples.DIR.iterdir())
            if p.is_file() and p.suffix != ".py"]


SAMPLES = _samples()
json_values_st = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=20)
garbage = st.one_of(
    st.text(max_size=300),
    st.binary(max_size=300),
    st.builds(lambda s, cut: s[:cut], st.sampled_from(SAMPLES), st.integers(0, 20_000)),
    st.builds(lambda s, i, junk: s[:i] + junk + s[i:], st.sampled_from(SAMPLES),
              st.integers(0, 20_000), st.text(max_size=20)),
    json_values_st.map(json.dumps),
)


def only_value_errors(fn, *args) -> None:
    try:
        fn(*args)
    except ValueError:
        pass


TEXT_PARSERS = [
    fstab.parse_proc_mounts, fstab.parse_fstab, programs.parse_tailscale_status,
    docker.parse_container_list, docker.parse_container, programs.parse_zfs_list,
    yaml_subset.parse_yaml_subset,
    lambda d: stacks.parse_compose_secrets(d, KEYS), lambda d: stacks.assigned_keys(d, KEYS),
    lambda d: keypaths.json_values(d, "a.*.0"), lambda d: keypaths.xml_values(d, "*.*"),
    lambda d: yaml_subset.yaml_values(d, "*.b"),
    lambda d: keypaths.descend_json(d, ["x", "*"]),
]


@FUZZ
@given(data=garbage, which=st.integers(0, len(TEXT_PARSERS) - 1))
def test_text_parsers_raise_only_value_errors(data: str | bytes, which: int) -> None:
    only_value_errors(TEXT_PARSERS[which], data)


@FUZZ
@given(doc=json_values_st, state=json_values_st, config=json_values_st)
def test_container_parser_on_any_json_shape(doc, state, config) -> None:
    for candidate in (doc, {"State": state, "Config": config, "Name": doc},
                      {"State": {"Health": state}, "Config": {"Healthcheck": config,
                                                               "Env": doc}}):
        only_value_errors(docker.parse_container, candidate, {"x": ["A"]}, SECRET_NAME)
        only_value_errors(programs.parse_tailscale_status, candidate)
        only_value_errors(docker.parse_container_list, [candidate])
        keypaths.values_at(candidate, "*.*.0")


@FUZZ
@given(raw=st.binary(max_size=400) | st.builds(
    lambda head, body: b"HTTP/1.1 200 OK\r\n" + head + b"\r\n\r\n" + body,
    st.sampled_from([b"Transfer-Encoding: chunked", b"Content-Length: 5", b"X: y"]),
    st.binary(max_size=60)))
def test_http_response_parser(raw: bytes) -> None:
    only_value_errors(docker.parse_http_response, raw)


address_soup = st.lists(st.sampled_from(
    [b"100.117.1.53", b"100.117.1.530", b"1", b"5.", b".4", b".", b"..", b"\n", b" ", b":7878",
     b"x", b"\0"]), max_size=30).map(b"".join)


@FUZZ
@given(data=address_soup | st.binary(max_size=300))
def test_address_finder_matches_exactly_the_whole_addresses(data: bytes) -> None:
    pattern = scan.address_pattern(["100.117.1.53"])
    found = scan.find_addresses(data, pattern)
    # oracle: maximal runs of dot-joined digit groups; the address counts when it is one
    tokens = re.finditer(rb"[0-9]+(?:\.[0-9]+)*", data)
    whole = {data.count(b"\n", 0, m.start()) + 1 for m in tokens if m.group() == b"100.117.1.53"}
    assert {line for _, line in found} == whole


yaml_key = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_-", min_size=1, max_size=8)
yaml_scalar = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(
    alphabet="abcXYZ019 _-./:@'\"#!&*%?,[]{}", max_size=12)
yaml_doc = st.recursive(yaml_scalar, lambda inner: st.lists(inner, max_size=3)
                        | st.dictionaries(yaml_key, inner, max_size=3), max_leaves=12)


@FUZZ
@given(doc=st.dictionaries(yaml_key, yaml_doc, min_size=1, max_size=4),
       indent=st.sampled_from([2, 4]), flow=st.booleans())
def test_yaml_subset_reads_what_pyyaml_writes(doc: dict, indent: int, flow: bool) -> None:
    text = yaml.safe_dump(doc, default_flow_style=None if flow else False, width=10**6,
                          indent=indent)
    expected = yaml.safe_load(text)
    assume(not any(isinstance(v, str) and yaml_subset._plain(v) != v for v in _leaves(expected)))
    try:
        got = yaml_subset.parse_yaml_subset(text)
    except ParseError:
        assume(False)  # outside the subset (a nested flow collection): refused, fine
    assert got == expected


def _leaves(node):
    if isinstance(node, dict):
        for k, v in node.items():
            yield k
            yield from _leaves(v)
    elif isinstance(node, list):
        for v in node:
            yield from _leaves(v)
    else:
        yield node


def test_huge_inputs_do_not_hang() -> None:
    big = "a b c d 0 0\n" * 200_000
    assert len(fstab.parse_proc_mounts(big)) == 200_000
    dots = b"100." * 500_000 + b"117.1.53"
    assert scan.find_addresses(dots, scan.address_pattern(["100.117.1.53"])) == []
    only_value_errors(yaml_subset.parse_yaml_subset, "- " * 50_000 + "x")
    only_value_errors(stacks.parse_compose_secrets, "-" * 1_000_000, KEYS)
