"""Issue 11, hole 1: no value under a secret-named key leaves a host or a probe, whatever the path.

The rule (keypaths.SECRET_NAME) is checked against every key of real published configs; the
readers (JSON, YAML, XML, SQLite JSON columns, probe bodies) are checked with key paths that
use `*`, on real files, and through the exact command a host runs.
"""

from __future__ import annotations

import json
import re
import shlex
import sqlite3
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import samples
import yaml

from opsverify.facts import api_http, commands
from opsverify.facts.agent import configs, keypaths
from opsverify.ssot import load

SEKRET = "SEKRET-7d1e5a9c2b"  # a config file's secret value; it must never come back
PRESENT, ABSENT = "<secret: present>", "<secret: absent>"  # all a secret-named key reads as


# --- the rule, on real config keys ----------------------------------------------------------

def _json_keys(doc: Any) -> set[str]:
    if isinstance(doc, dict):
        return set(doc) | {k for v in doc.values() for k in _json_keys(v)}
    if isinstance(doc, list):
        return {k for v in doc for k in _json_keys(v)}
    return set()


def real_keys() -> set[str]:
    """Every key name of the real config samples (JSON, XML, INI, YAML)."""
    keys: set[str] = set()
    for name in ("jellyseerr_settings_cypress_fixture.json", "posterizarr_config_example.json",
                 "jellyseerr_settings_json_RECONSTRUCTED.json"):
        keys |= _json_keys(samples.load_json(name))
    for name in ("radarr_config_xml_real.xml", "jellyfin_system_xml_RECONSTRUCTED.xml",
                 "jellyfin_system_xml_real_TRUNCATED.xml",
                 "jellyfin_library_options_xml_RECONSTRUCTED.xml"):
        keys |= {e.tag for e in ET.fromstring(samples.raw(name)).iter()}
    for name in ("sabnzbd_ini_basics_RECONSTRUCTED.ini", "sabnzbd_basic_ini_fixture.ini"):
        keys |= set(re.findall(r"(?m)^\s*(\w+)\s*=", samples.text(name)))
    keys |= _json_keys(yaml.safe_load(samples.text("recyclarr_config_template.yml")))
    return keys


# Keys of those files that hold a secret (or a URL embedding one), and keys of other apps'
# real configs, named by app: each must read as secret.
SECRET_KEYS = {
    "accessToken", "apiKey", "botAPI", "token", "userToken", "vapidPrivate", "webhookUrl",
    "EmbyAPIKey", "FanartTvAPIKey", "JellyfinAPIKey", "PlexToken", "tmdbtoken", "tvdbapi",
    "basicAuthPassword", "Discord", "AppriseUrl", "ApiKey", "SslCertPassword", "api_key",
    "nzb_key",
    # Bazarr config.yaml, qBittorrent.conf, Jellyfin network.xml, Plex Preferences.xml,
    # Navidrome, Tautulli, Jellyseerr email/webpush/lunasea, Prowlarr/Sonarr/Lidarr config.xml
    "flask_secret_key", "password", "WebUI\\Password_PBKDF2", "CertificatePassword",
    "PlexOnlineToken", "ND_PASSWORDENCRYPTIONKEY", "PasswordEncryptionKey", "pms_token",
    "authPass", "authUser", "pgpPrivateKey", "pgpPassword", "jwt_secret", "cookie_secret",
    "sessionSecret", "claimToken", "privateKey", "RADARR_API_KEY", "INFISICAL_CLIENT_SECRET",
    "Authorization", "salt", "passwd", "pwd", "KEY", "credentials",
}
# Settings the rule hides although they hold no secret: accepted, hiding is the safe side.
OVER_HIDDEN = {
    "AuthenticationMethod", "AuthenticationRequired", "IsPortAuthorized", "basicAuthEnabled",
    "basicAuthUsername", "jellyfinForgotPasswordUrl", "webhookRoleId", "discord", "webhook",
    "DiscordUserName",
}


def test_secret_name_rule_on_every_key_of_real_configs() -> None:
    keys = real_keys()
    assert len(keys) > 300  # the samples are really read
    hidden = {k for k in keys if keypaths.secret_named(k)}
    in_files = SECRET_KEYS & keys
    assert len(in_files) >= 18
    assert not in_files - hidden, "secrets that would be read"
    assert hidden - in_files <= OVER_HIDDEN, "settings hidden without a reason"
    assert not {k for k in SECRET_KEYS if not keypaths.secret_named(k)}


def test_no_ssot_key_or_pinned_variable_is_hidden() -> None:
    ssot = load()
    segments = {s for c in ssot.config_checks for k in c.keys for s in k.split(".")} - {"*"}
    env = {n for c in ssot.containers for n in c.env}
    assert segments and env
    assert not {s for s in segments | env if keypaths.secret_named(s)}
    for word in ("keyboard", "monkey", "Passthrough", "ProxyBypassFilter", "author",
                 "Authority", "DOCKER_API_VERSION", "api_logging", "ApiPart", "hostname"):
        assert not keypaths.secret_named(word), word


# --- the readers -----------------------------------------------------------------------------

SETTINGS = {"main": {"apiKey": SEKRET, "applicationUrl": "https://requests.example"},
            "radarr": [{"hostname": "100.107.36.76", "port": 7878, "apiKey": SEKRET,
                        "auth": {"user": "admin", "pass": SEKRET}, "tags": [1, 2]}],
            "notifications": {"agents": {"email": {"options": {"authPass": SEKRET,
                                                                "authUser": ""}}}}}


def _config(tmp: Path, fmt: str, text: str | bytes, keys: list[str]) -> dict[str, Any]:
    path = tmp / f"settings.{fmt}"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return configs.config_values({"name": "x", "file": str(path), "format": fmt, "keys": keys},
                                None)


def test_a_wildcard_key_path_reads_no_secret(tmp_path: Path) -> None:
    """The confirmed case: `radarr.*.*` on a settings.json holding an apiKey."""
    got = _config(tmp_path, "json", json.dumps(SETTINGS), ["radarr.*.*", "*.*", "*.*.*.*.*"])
    assert got["ok"], got
    assert SEKRET not in json.dumps(got)
    assert got["values"]["radarr.*.*"] == ["100.107.36.76", 7878, PRESENT, PRESENT]
    assert got["values"]["*.*"] == [PRESENT, "https://requests.example"]  # no subtree
    assert got["values"]["*.*.*.*.*"] == [PRESENT, ABSENT]


def test_literal_paths_still_read_and_a_secret_name_is_refused(tmp_path: Path) -> None:
    got = _config(tmp_path, "json", json.dumps(SETTINGS),
                  ["radarr.0.hostname", "radarr.0.port", "radarr.0.tags"])
    assert got["values"] == {"radarr.0.hostname": ["100.107.36.76"], "radarr.0.port": [7878],
                             "radarr.0.tags": ["<list>"]}
    refused = _config(tmp_path, "json", json.dumps(SETTINGS), ["radarr.0.auth.user"])
    assert refused["error"] == "refused: key path radarr.0.auth.user names a secret"


def test_yaml_xml_and_sqlite_wildcards_read_no_secret(tmp_path: Path) -> None:
    recyclarr = "radarr:\n  main:\n    base_url: http://radarr:7878\n" \
                f"    api_key: {SEKRET}\n    session:\n      id: {SEKRET}\n"
    got = _config(tmp_path, "yaml", recyclarr, ["radarr.*.*", "*.*.*.*"])
    # a secret-named subtree reads as present too: nothing of it, not even its shape
    assert got["values"] == {"radarr.*.*": ["http://radarr:7878", PRESENT, PRESENT],
                             "*.*.*.*": [PRESENT]}
    radarr = samples.raw("radarr_config_xml_real.xml")  # a real config.xml with its ApiKey
    got = _config(tmp_path, "xml", radarr, ["Config.*"])
    real_key = ET.fromstring(radarr).findtext("ApiKey")
    assert real_key and real_key not in json.dumps(got)
    assert got["values"]["Config.*"][:6] == ["*", "7878", "9898", "False", "False", PRESENT]
    assert ABSENT in got["values"]["Config.*"]  # SslCertPassword is empty
    db = tmp_path / "prowlarr.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE Applications (Id INTEGER PRIMARY KEY, Name TEXT, Settings TEXT)")
    con.execute("INSERT INTO Applications VALUES (1, 'Radarr', ?)", (json.dumps(
        {"prowlarrUrl": "http://prowlarr:9696", "apiKey": SEKRET}),))
    con.commit()
    con.close()
    got = configs.config_values({"name": "p", "file": str(db), "format": "sqlite",
                                "table": "Applications", "row": {"Name": "Radarr"},
                                "keys": ["Settings.*"]}, None)
    assert got["values"] == {"Settings.*": ["http://prowlarr:9696", PRESENT]}


def test_the_host_command_itself_reads_no_secret(tmp_path: Path) -> None:
    """The exact command a host runs, with PARAMS that name no secret pattern at all."""
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(SETTINGS))
    params = {"host": "h", "secret_name": "", "files": {}, "zfs": False, "pinned_env": {},
              "stacks": {}, "secret_keys": [], "plaintext_globs": [], "retired": [],
              "config_roots": [], "config_checks": [{"name": "x", "file": str(path),
                                                     "format": "json", "keys": ["*.*.*"]}]}
    argv = shlex.split(commands.facts_command(commands.script_payload(), params, 20))
    out = subprocess.run(argv, capture_output=True, check=True, timeout=25).stdout.decode()
    assert SEKRET not in out
    facts = json.loads(out[out.rindex(commands.SENTINEL) + len(commands.SENTINEL):])
    assert facts["config"]["x"]["values"]["*.*.*"] == ["100.107.36.76", 7878, PRESENT, PRESENT]


@pytest.mark.parametrize("expect, shown", [
    ({"*": "x"}, {"*": ["Radarr"]}),  # scalars only: the subtrees beside it are dropped
    ({"main.*": "x"}, {"main.*": [PRESENT, "https://requests.example"]}),
    ({"main": "x"}, {"main": "<object>"}),
    ({"radarr.*.auth": "x"}, {"radarr.*.auth": [PRESENT]}),
    ({"notifications.agents.email.options.authUser": ""},
     {"notifications.agents.email.options.authUser": ABSENT}),
])
def test_a_probe_answer_gives_no_secret_and_no_subtree(expect: dict, shown: dict) -> None:
    body = json.dumps({"appName": "Radarr", **SETTINGS}).encode()
    got = api_http.body_facts(body, {"status": 200, "json": expect})
    assert SEKRET not in json.dumps(got)
    assert got["json"] == shown
