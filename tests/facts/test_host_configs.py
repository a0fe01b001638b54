"""Config values behind an indirection (Recyclarr's !env_var / !secret), TOML, and the facts of a
generated .env (its unit, its git status), on real samples (tests/samples)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import samples

from opsverify.facts.agent import configs, envfiles, primitives
from opsverify.redact import SECRET_NAME

URL_KEY = "sonarr.*.base_url"


def env_lookup(values: dict[str, str | None], asked: list[str] | None = None):
    """A container's environment as the Docker lookup returns it, one name at a time."""
    def lookup(container: str, name: str) -> tuple[str | None, str | None]:
        if asked is not None:
            asked.append(name)
        return None, values.get(name)
    return lookup


def check(path: Path, *keys: str, container: str | None = "recyclarr") -> dict:
    return {"name": "x", "file": str(path), "format": "yaml", "table": None, "row": {},
            "keys": list(keys), "container": container}


def recyclarr(tmp_path: Path, config: str, secrets: str | None = None) -> Path:
    path = tmp_path / "recyclarr.yml"
    path.write_text(samples.text(config))
    if secrets:
        (tmp_path / "secrets.yml").write_text(samples.text(secrets))
    return path


# --- !env_var, on Recyclarr's own test input (ConfigurationLoaderEnvVarTest) -------------------

def test_env_var_is_read_from_the_container_environment(tmp_path: Path) -> None:
    path = recyclarr(tmp_path, "recyclarr_env_var_test_config.yml")
    asked: list[str] = []
    got = configs.config_values(check(path, URL_KEY), SECRET_NAME,
                               env_lookup({"SONARR_URL": "http://the_url"}, asked))
    assert got["ok"] and got["values"] == {URL_KEY: ["http://the_url"]}
    assert got["via"] == {URL_KEY: ["!env_var SONARR_URL"]} and "unresolved" not in got
    assert asked == ["SONARR_URL"]  # SONARR_API_KEY is not selected and never looked up


@pytest.mark.parametrize("env", [{}, {"SONARR_URL": ""}, {"SONARR_URL": "  "}])
def test_env_var_default_when_unset_or_blank(tmp_path: Path, env: dict) -> None:
    path = recyclarr(tmp_path, "recyclarr_env_var_test_config.yml")
    got = configs.config_values(check(path, URL_KEY), SECRET_NAME, env_lookup(env))
    assert got["values"] == {URL_KEY: ["http://sonarr:1233"]}


def test_env_var_is_never_compared_as_its_name(tmp_path: Path) -> None:
    path = tmp_path / "recyclarr.yml"
    path.write_text("radarr:\n  movies:\n    base_url: !env_var RADARR_URL\n")
    got = configs.config_values(check(path, "radarr.*.base_url"), SECRET_NAME, env_lookup({}))
    assert got["ok"] and got["values"] == {"radarr.*.base_url": []}
    assert got["unresolved"] == {"radarr.*.base_url": [
        ("!env_var RADARR_URL: not set in recyclarr's environment and no default (Recyclarr "
         "refuses the config)")]}
    none = configs.config_values(check(path, "radarr.*.base_url", container=None), SECRET_NAME)
    assert "no container named for this file" in none["unresolved"]["radarr.*.base_url"][0]


def test_secret_named_variables_and_non_urls_are_never_returned(tmp_path: Path) -> None:
    path = tmp_path / "recyclarr.yml"
    path.write_text("radarr:\n  a:\n    base_url: !env_var RADARR_API_KEY\n"
                    "  b:\n    base_url: !env_var PLAIN\n")
    asked: list[str] = []
    got = configs.config_values(check(path, "radarr.*.base_url"), SECRET_NAME,
                               env_lookup({"PLAIN": "f7e74ba6c80046e39e076a27af5a8444",
                                           "RADARR_API_KEY": "x"}, asked))
    assert asked == ["PLAIN"]  # the secret-named variable is not even looked up
    assert got["values"] == {"radarr.*.base_url": []}
    assert got["unresolved"]["radarr.*.base_url"] == [
        "!env_var RADARR_API_KEY names a secret; not looked up",
        "!env_var PLAIN does not hold an http(s) URL; its value is not read"]
    assert "f7e74ba6" not in repr(got)


# --- !secret, on Recyclarr's test input (ConfigurationLoaderSecretsTest) and docs ------------

def test_secret_holding_a_url_is_resolved_an_api_key_never_read(tmp_path: Path) -> None:
    path = recyclarr(tmp_path, "recyclarr_secrets_test_config.yml",
                     "recyclarr_secrets_test_secrets.yml")
    got = configs.config_values(
        check(path, "sonarr.*.base_url", "sonarr.*.custom_formats.0.trash_ids.0"), SECRET_NAME)
    assert got["values"]["sonarr.*.base_url"] == ["https://radarr:7878"]
    assert got["unresolved"] == {"sonarr.*.custom_formats.0.trash_ids.0": [
        "!secret secret_rp names a secret; not looked up"]}
    assert "1234567" not in repr(got) and "95283e6b" not in repr(got)
    refused = configs.config_values(check(path, "sonarr.*.api_key"), SECRET_NAME)
    assert refused["error"] == "refused: key path sonarr.*.api_key names a secret"


def test_secret_docs_example(tmp_path: Path) -> None:
    path = recyclarr(tmp_path, "recyclarr_secrets_docs_config.yml",
                     "recyclarr_secrets_docs_secrets.yml")
    got = configs.config_values(check(path, "radarr.*.base_url"), SECRET_NAME)
    assert got["values"] == {"radarr.*.base_url": ["http://localhost:7878"]}
    assert got["via"] == {"radarr.*.base_url": ["!secret radarr4k_another_url"]}
    assert "bf99da49" not in repr(got)


def test_secret_key_named_like_a_secret_is_not_looked_up(tmp_path: Path) -> None:
    path = tmp_path / "recyclarr.yml"
    path.write_text("radarr:\n  x:\n    base_url: !secret radarr_apikey\n")
    (tmp_path / "secrets.yml").write_text("radarr_apikey: http://radarr:7878\n")
    got = configs.config_values(check(path, "radarr.*.base_url"), SECRET_NAME)
    assert got["unresolved"]["radarr.*.base_url"] == [
        "!secret radarr_apikey names a secret; not looked up"]


@pytest.mark.parametrize("files, reason", [
    ({}, "no secrets.yml beside"),
    ({"secrets.yml": "other: http://x:1\n"}, "no such key in secrets.yml"),
    ({"secrets.yml": "u: http://x:1\n", "secrets.yaml": "u: http://x:1\n"},
     "both secrets.yml and secrets.yaml exist"),
    ({"secrets.yml": "u: http://user:pw@radarr:7878\n"}, "holds a URL with credentials"),
    ({"secrets.yml": "- a\n- b\n"}, "is not a mapping of keys"),
    ({"secrets.yml": "u: 95283e6b156c42f3af8a9b16173f876b\n"}, "does not hold an http(s) URL"),
])
def test_unresolvable_secret_says_why(tmp_path: Path, files: dict, reason: str) -> None:
    path = tmp_path / "recyclarr.yml"
    path.write_text("radarr:\n  x:\n    base_url: !secret u\n")
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    got = configs.config_values(check(path, "radarr.*.base_url"), SECRET_NAME)
    assert got["ok"] and got["values"] == {"radarr.*.base_url": []}
    assert reason in got["unresolved"]["radarr.*.base_url"][0]
    assert "pw@" not in repr(got) and "95283e6b" not in repr(got)


def test_configs_directory_uses_the_parent_secrets(tmp_path: Path) -> None:
    assert configs.secrets_files(str(tmp_path / "configs" / "radarr.yml")) == [
        str(tmp_path / "secrets.yml"), str(tmp_path / "secrets.yaml")]


# --- TOML (autopulse's example config) -------------------------------------------------------

def test_toml_autopulse_targets(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(samples.text("autopulse_example_config.toml"))
    got = configs.config_values({"name": "x", "file": str(path), "format": "toml",
                                "keys": ["targets.*.url", "targets.*.type"]}, SECRET_NAME)
    assert got["values"]["targets.*.url"] == ["http://plex:32400", "http://jellyfin:8096"]
    assert got["values"]["targets.*.type"] == ["plex", "jellyfin", "command"]
    assert "your-jellyfin-token" not in repr(got)


def test_toml_errors_name_the_place_not_the_content() -> None:
    with pytest.raises(primitives.ParseError, match=r"TOML file: invalid at line 2 column \d+$"):
        configs.load_toml('a = 1\nb = "hunter2\n')


# --- a generated .env: its unit, its git status -----------------------------------------------

def test_exec_start_pre_of_a_compose_unit(tmp_path: Path) -> None:
    text = samples.text("systemd_unit_compose_infisical_RECONSTRUCTED.service")
    [pre] = envfiles.exec_start_pre(text)
    assert pre.startswith("/bin/sh -c 'umask 077; infisical export")
    (tmp_path / "streaming-stack.service").write_text(text)
    got = envfiles.unit_facts("streaming-stack.service", "/opt/stacks/streaming-stack/.env",
                              primitives.read_file, dirs=(str(tmp_path / "etc"), str(tmp_path)))
    assert got == {"file": str(tmp_path / "streaming-stack.service"), "dropins": [],
                   "writes_file": True, "runs_infisical": True, "error": None}
    other = envfiles.unit_facts("streaming-stack.service", "/opt/other/.env", primitives.read_file,
                                dirs=(str(tmp_path),))
    assert other["writes_file"] is False and other["runs_infisical"] is False


def test_drop_in_resets_exec_start_pre(tmp_path: Path) -> None:
    (tmp_path / "s.service").write_text(
        samples.text("systemd_unit_compose_infisical_RECONSTRUCTED.service"))
    (tmp_path / "s.service.d").mkdir()
    (tmp_path / "s.service.d" / "override.conf").write_text(
        "[Service]\nExecStartPre=\nExecStartPre=/bin/true \\\n  /opt/stacks/streaming-stack/.env\n")
    got = envfiles.unit_facts("s.service", "/opt/stacks/streaming-stack/.env", primitives.read_file,
                              dirs=(str(tmp_path),))
    assert got["writes_file"] is True and got["runs_infisical"] is False
    assert got["dropins"] == [str(tmp_path / "s.service.d" / "override.conf")]
    missing = envfiles.unit_facts("nope.service", "/x/.env", primitives.read_file,
                                  dirs=(str(tmp_path),))
    assert missing["file"] is None and "unit nope.service not found" in missing["error"]


needs_git = pytest.mark.skipif(not shutil.which("git"), reason="needs git")


@needs_git
@pytest.mark.parametrize("version", ["2", "3", "4"])
def test_git_index_read_as_git_writes_it(tmp_path: Path, version: str) -> None:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(tmp_path), *args], check=True,
                              capture_output=True, text=True).stdout
    git("init", "-q")
    (tmp_path / "stack").mkdir()
    for name in ("docker-compose.yml", ".env", "a-very-long-directory-name/.env"):
        (tmp_path / "stack" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "stack" / name).write_text("x\n")
    (tmp_path / "stack" / "untracked.env").write_text("y\n")
    git("add", "stack/docker-compose.yml", "stack/.env", "stack/a-very-long-directory-name/.env")
    git("update-index", "--index-version", version)
    if version == "3":
        git("update-index", "--skip-worktree", "stack/.env")  # sets an extended flag
    listed = set(git("ls-files").split())
    assert set(envfiles.index_paths((tmp_path / ".git" / "index").read_bytes())) == listed
    tracked = envfiles.git_facts(str(tmp_path / "stack" / ".env"), primitives.read_file)
    assert tracked == {"repo": str(tmp_path), "tracked": True, "error": None}
    loose = envfiles.git_facts(str(tmp_path / "stack" / "untracked.env"), primitives.read_file)
    assert loose["tracked"] is False


def test_no_repository_means_not_tracked(tmp_path: Path) -> None:
    assert envfiles.git_facts(str(tmp_path / ".env"), primitives.read_file)["tracked"] is False
    with pytest.raises(ValueError, match="not a git index"):
        envfiles.index_paths(b"DIRX\0\0\0\2\0\0\0\0")


def test_file_facts_mode_never_content(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("JELLYFIN_API_KEY=hunter2\n")
    os.chmod(env, 0o600)
    got = envfiles.file_facts(str(env))
    assert got == {"exists": True, "mode": "0600", "uid": os.getuid(), "world_readable": False,
                   "regular": True}
    os.chmod(env, 0o644)
    assert envfiles.file_facts(str(env))["world_readable"] is True
    assert not re.search("hunter2", repr(envfiles.generated_facts(
        {"path": str(env), "unit": "x.service"}, primitives.read_file)))
