"""The twin as computed from the SSOT, and the container HTTP server; no root, no twin needed."""

from __future__ import annotations

import hashlib
import json
import re
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from opsverify.lab import app_http, apps, prereq, seeds, spec
from opsverify.lab.formats import E, Json, Sqlite, Xml, Yaml, put, render
from opsverify.lab.image import HTTPD_SRC
from opsverify.ssot import load

SSOT = load()


@pytest.fixture(scope="module")
def world() -> spec.World:
    return spec.build(SSOT, seeds.new_secrets(SSOT))


def values_at(doc: Any, parts: list[str]) -> list[Any]:
    """Every value a key path names in parsed JSON/YAML (`*` = every key or item)."""
    if not parts:
        return [doc]
    key, rest = parts[0], parts[1:]
    if isinstance(doc, list):
        items = doc if key == "*" else [doc[int(key)]] if key.isdigit() else []
    elif isinstance(doc, dict):
        items = list(doc.values()) if key == "*" else [doc[key]] if key in doc else []
    else:
        items = []
    return [v for item in items for v in values_at(item, rest)]


def xml_values(root: ET.Element, parts: list[str]) -> list[str]:
    assert parts[0] == root.tag
    nodes = [root]
    for p in parts[1:]:
        nodes = [c for n in nodes for c in n if p in (c.tag, "*")]
    return [n.text or "" for n in nodes]


class _Recyclarr(yaml.SafeLoader):
    """PyYAML with Recyclarr's two tags, read as (tag, text) for resolve() below."""


for _tag in ("!env_var", "!secret"):
    _Recyclarr.add_constructor(_tag, lambda loader, node, t=_tag: (t, loader.construct_scalar(node)))


def resolve(world: spec.World, check: Any, value: Any) -> Any:
    """A value as Recyclarr loads it: `!env_var` from the container's environment (default
    after a space), `!secret` from secrets.yml beside the config."""
    if not isinstance(value, tuple):
        return value
    tag, text = value
    if tag == "!env_var":
        name, _, default = text.partition(" ")
        env = next(c.env for c in world.hosts[check.host].containers
                   if c.name == check.source.split(":")[-1])
        return env.get(name) or default or None
    secrets_yml = str(Path(check.file).parent / "secrets.yml")
    return yaml.safe_load(world.hosts[check.host].files[secrets_yml])[text]


def file_values(data: bytes, check: Any, path: str, world: spec.World | None = None) -> list[Any]:
    parts = path.split(".")
    if check.format == "json":
        return values_at(json.loads(data), parts)
    if check.format == "yaml":
        return [resolve(world, check, v)
                for v in values_at(yaml.load(data, Loader=_Recyclarr), parts)]
    if check.format == "toml":
        return values_at(tomllib.loads(data.decode()), parts)
    if check.format == "xml":
        return xml_values(ET.fromstring(data), parts)
    with tempfile.NamedTemporaryFile(suffix=".db") as tmp:
        tmp.write(data)
        tmp.flush()
        con = sqlite3.connect(tmp.name)
        con.row_factory = sqlite3.Row
        rows = [dict(r) for r in con.execute(f'SELECT * FROM "{check.table}"')]
        con.close()
    rows = [r for r in rows if all(str(r.get(k)) == str(v) for k, v in check.row.items())]
    out = []
    for r in rows:
        col = r[parts[0]]
        out += values_at(json.loads(col), parts[1:]) if len(parts) > 1 else [col]
    return out


def test_every_wiring_value_holds_in_the_generated_files(world: spec.World) -> None:
    checked = 0
    for check in SSOT.config_checks:
        files = world.hosts[check.host].files
        assert check.file in files, f"{check.name}: {check.file} not generated on {check.host}"
        if check.when == "configured":  # as the scope found it: not configured (yet)
            assert all(v in ("", None) for path in check.keys
                       for v in file_values(files[check.file], check, path, world))
            continue
        for path, want in check.keys.items():
            got = file_values(files[check.file], check, path, world)
            want_s = str(want).lower() if isinstance(want, bool) else want
            assert got, f"{check.name}: {path} missing in {check.file}"
            assert all(str(g) == str(want_s) for g in got), f"{check.name}: {path} = {got}"
            checked += 1
    assert checked >= 10


def test_no_retired_address_anywhere_in_the_clean_twin(world: spec.World) -> None:
    for hs in world.hosts.values():
        for path, data in hs.files.items():
            for addr in SSOT.retired_addresses:
                assert not re.search(rf"(?<![\d.]){re.escape(addr)}(?![\d])", data.decode(
                    errors="replace")), f"{addr} in {hs.name}:{path}"


def test_config_files_are_in_the_applications_real_formats(world: spec.World) -> None:
    vm209, vm210 = world.hosts["vm209"].files, world.hosts["vm210"].files
    radarr = ET.fromstring(vm209["/mnt/docker/radarr/config.xml"])
    assert radarr.tag == "Config" and radarr.findtext("Port") == "7878"
    assert radarr.findtext("ApiKey") == world.secrets["RADARR_API_KEY"]
    assert b"<UrlBase></UrlBase>" in vm209["/mnt/docker/radarr/config.xml"]  # XDocument style
    system = vm210["/mnt/docker/jellyfin/config/system.xml"]
    assert system.startswith(b'<?xml version="1.0" encoding="utf-8"?>\n<ServerConfiguration ')
    assert b"<MetadataPath />" in system  # XmlSerializer style
    seerr = vm210["/mnt/docker/jellyseerr/settings.json"].decode()
    assert seerr.startswith('{\n "clientId"')  # one-space indent, as Jellyseerr writes it
    assert json.loads(seerr)["main"]["mediaServerType"] == 2
    poster = json.loads(vm209["/mnt/docker/posterizarr/config.json"])
    assert poster["JellyfinPart"]["UseJellyfin"] == "true"  # booleans as strings
    recyclarr = vm209["/mnt/docker/recyclarr/recyclarr.yml"].decode()
    assert recyclarr.startswith("# yaml-language-server: $schema=")
    assert "\n    quality_profiles:\n" in recyclarr  # empty keys stay empty, not `null`
    db = vm209["/mnt/docker/prowlarr/prowlarr.db"]
    assert db.startswith(b"SQLite format 3\x00")


def test_prowlarr_settings_are_indented_camelcase_json(world: spec.World) -> None:
    check = next(c for c in SSOT.config_checks if c.format == "sqlite")
    data = world.hosts[check.host].files[check.file]
    with tempfile.NamedTemporaryFile(suffix=".db") as tmp:
        tmp.write(data)
        tmp.flush()
        con = sqlite3.connect(tmp.name)
        rows = con.execute('SELECT Name, Implementation, Settings, ConfigContract, SyncLevel, '
                           'Tags FROM "Applications" ORDER BY Id').fetchall()
        ddl = con.execute("SELECT sql FROM sqlite_master WHERE name='Applications'").fetchone()
    assert [r[0] for r in rows] == ["Radarr", "Sonarr", "Lidarr"]
    assert '"Id" INTEGER PRIMARY KEY AUTOINCREMENT' in ddl[0]
    _name, impl, settings, contract, level, tags = rows[0]
    assert settings.startswith('{\n  "prowlarrUrl": "http://prowlarr:9696",\n  "baseUrl"')
    assert (impl, contract, level, tags) == ("Radarr", "RadarrSettings", 2, "[]")


def test_compose_references_every_stack_secret_and_holds_no_value(world: spec.World) -> None:
    for sp in SSOT.secret_paths:
        stack = SSOT.stacks[sp.stack]
        text = world.hosts[stack.host].files[stack.compose_path].decode()
        for key in sp.keys:
            assert f"{key}: ${{{key}}}" in text, f"{key} not referenced in {stack.compose_path}"
            assert world.secrets[key] not in text
        # the only .env is one the SSOT declares generated by its unit, with the SSOT's mode
        hs = world.hosts[stack.host]
        declared = {g.path for g in SSOT.generated_env if g.stack == stack.name}
        assert {p for p in hs.files if Path(p).name.startswith(".env")} == declared
        for g in (g for g in SSOT.generated_env if g.stack == stack.name):
            assert hs.modes[g.path] == int(g.mode, 8)
            assert f"> {g.path}'" in hs.files[f"{spec.UNIT_DIR}/{g.unit}"].decode()


def test_every_ssot_container_is_specified_as_the_ssot_says(world: spec.World) -> None:
    specs = {(c.host, c.name): c for hs in world.hosts.values() for c in hs.containers}
    assert len(specs) == len(SSOT.containers)
    for c in SSOT.containers:
        s = specs[(c.host, c.name)]
        assert s.image == c.image
        assert s.running == (c.state == "running")
        assert (s.healthcheck is not None) == c.healthcheck
        assert {k: s.env[k] for k in c.env} == c.env
        assert s.labels["com.docker.compose.project"] == c.stack
        assert s.labels["com.docker.compose.service"] == c.name
        for port in c.ports:
            host = SSOT.hosts[c.host]
            for addr in host.addresses:
                assert f"{addr}:{port.host}" in " ".join(s.command)


def test_trailarr_publishes_7667_and_checks_its_own_7889() -> None:
    w = spec.build(SSOT, seeds.new_secrets(SSOT))
    t = next(c for c in w.hosts["vm209"].containers if c.name == "trailarr")
    assert "100.107.36.76:7667" in t.command and "127.0.0.1:7889" in t.command
    assert "http://127.0.0.1:7889/" in t.healthcheck["test"][1]


def test_same_secrets_same_world() -> None:
    secrets = seeds.new_secrets(SSOT)
    a, b = spec.build(SSOT, secrets), spec.build(SSOT, secrets)
    for name in a.hosts:
        assert a.hosts[name].files == b.hosts[name].files
        assert a.hosts[name].containers == b.hosts[name].containers
    assert seeds.standin_seeds(a)["proxmox"]["vms"].keys() == {"209", "210"}
    assert set(seeds.new_secrets(SSOT).values()).isdisjoint(set(secrets.values()) - {""})


def test_vm201_is_kept_until_its_hold_ends() -> None:
    import datetime as dt
    secrets = seeds.new_secrets(SSOT)
    before = spec.build(SSOT, secrets, dt.datetime(2026, 2, 11, tzinfo=dt.UTC))
    vms = seeds.standin_seeds(before)["proxmox"]["vms"]
    assert vms["201"]["running"] is False and vms["201"]["config"]["onboot"] == 0
    assert "tank/docker/media-stack" in before.hosts["pve"].zfs["datasets"]
    after = spec.build(SSOT, secrets, dt.datetime(2026, 11, 27, tzinfo=dt.UTC))
    assert "201" not in seeds.standin_seeds(after)["proxmox"]["vms"]
    assert "tank/docker/media-stack" not in after.hosts["pve"].zfs["datasets"]


def test_canaries_are_every_secret_value(world: spec.World) -> None:
    assert set(world.canaries) == {v for k, v in world.secrets.items() if k != "seed"}
    assert all(len(c) >= 12 for c in world.canaries)
    for key in SSOT.secret_keys:
        assert world.secrets[key] in world.canaries


def test_put_sets_every_match_and_creates_what_is_missing() -> None:
    doc = Json({"radarr": [{"hostname": "a"}, {"hostname": "b"}]})
    put(doc, "radarr.*.hostname", "x")
    put(doc, "jellyfin.ip", "jellyfin")
    assert doc.data == {"radarr": [{"hostname": "x"}, {"hostname": "x"}],
                        "jellyfin": {"ip": "jellyfin"}}
    x = Xml(E("LibraryOptions", E("PathInfos", E("MediaPathInfo", E("Path", "/data")))))
    put(x, "LibraryOptions.PathInfos.MediaPathInfo.Path", "/media/movies")
    put(x, "LibraryOptions.Enabled", True)
    assert b"<Path>/media/movies</Path>" in render(x) and b"<Enabled>true</Enabled>" in render(x)
    db = Sqlite('CREATE TABLE "T" ("Name" TEXT, "Settings" TEXT);',
                {"T": [{"Name": "A", "Settings": '{"u": 1}'}]})
    put(db, "Settings.u", 2, row={"Name": "A"}, table="T")
    assert json.loads(db.tables["T"][0]["Settings"]) == {"u": 2}
    with pytest.raises(ValueError, match="does not start at"):
        put(x, "Other.Path", 1)
    assert render(Yaml({"a": None})) == b"a:\n"


def test_missing_prerequisites_name_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prereq, "which", lambda cmd: None if cmd in ("dockerd", "sshd") else "/x")
    lines = prereq.missing()
    assert "missing dockerd: apt-get install docker.io" in lines
    assert "missing sshd: apt-get install openssh-server" in lines
    assert lines[-1] == "or all at once: apt-get install docker.io openssh-server"


def test_bad_ssot_is_a_clear_error_without_traceback(tmp_path: Path) -> None:
    if prereq.missing():
        pytest.skip("prerequisites checked first")
    proc = subprocess.run([sys.executable, "-m", "opsverify.cli", "lab", "up", "--name", "labbad",
                           "--ssot", str(tmp_path / "x")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert "invalid SSOT" in proc.stderr and "Traceback" not in proc.stderr
    assert not Path("/run/netns/opsverify-labbad").exists()


# ---- twin-httpd ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def httpd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if subprocess.run(["which", "gcc"], capture_output=True, check=False).returncode:
        pytest.skip("gcc missing")
    out = tmp_path_factory.mktemp("httpd") / "twin-httpd"
    subprocess.run(["gcc", "-static", "-O2", "-o", str(out), str(HTTPD_SRC)], check=True)
    return out


def _serve(httpd: Path, args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([str(httpd), "-l", f"127.0.0.1:{port}", *args], env=env)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.02)
    return proc, port


def _get(port: int, target: str, headers: dict[str, str] | None = None) -> tuple[int, dict, str]:
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", target, headers=headers or {})
    r = c.getresponse()
    return r.status, dict(r.getheaders()), r.read().decode()


def test_httpd_answers_what_the_gates_ask(httpd: Path) -> None:
    w = spec.build(SSOT, seeds.new_secrets(SSOT))
    env = {"RADARR_API_KEY": "k" * 32, "NAVIDROME_USER": "nd-user", "NAVIDROME_PASSWORD": "pw"}
    ctx = apps.Ctx(SSOT, w.secrets, w.secrets["seed"])
    radarr = SSOT.container("download-stack:radarr")
    navidrome = SSOT.container("streaming-stack:navidrome")
    seerr = SSOT.container("streaming-stack:jellyseerr")
    rules = [r for c in (radarr, navidrome, seerr) for r in app_http.rules(ctx, c)
             if not r.spec.startswith("/ ")] + [app_http.root_rule(ctx, seerr)]
    proc, port = _serve(httpd, [a for r in rules for a in r.argv()], env)
    try:
        status, _, body = _get(port, "/api/v3/system/status", {"X-Api-Key": "k" * 32})
        assert status == 200 and json.loads(body)["appName"] == "Radarr"
        assert _get(port, "/api/v3/system/status?apikey=" + "k" * 32)[0] == 200
        assert _get(port, "/api/v3/system/status", {"X-Api-Key": "nope"})[0] == 401
        token = hashlib.md5(b"pwsalt").hexdigest()
        status, hdr, body = _get(port, f"/rest/ping.view?u=nd-user&t={token}&s=salt&f=json")
        assert json.loads(body)["subsonic-response"]["status"] == "ok"
        status, _, body = _get(port, "/rest/ping.view?u=nd-user&t=bad&s=salt&f=json")
        err = json.loads(body)["subsonic-response"]
        assert status == 200 and err["status"] == "failed" and err["error"]["code"] == 40
        assert _get(port, "/rest/ping.view?u=nd-user&p=enc:7077")[1]["Content-Type"] == \
            "application/xml"
        status, hdr, _ = _get(port, "/")
        assert (status, hdr["Location"]) == (307, "/login")
        assert json.loads(_get(port, "/api/v1/status")[2])["version"]
        assert _get(port, "/nowhere")[0] == 404
    finally:
        proc.terminate()
        assert proc.wait(5) == 0  # SIGTERM: a clean exit, as `docker stop` expects
