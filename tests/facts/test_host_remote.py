"""The remote fact script, run for real on this machine's files (no SSH), and its audit."""

from __future__ import annotations

import ast
import glob
import json
import os
import shlex
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import samples

from opsverify.facts import commands
from opsverify.facts.agent import configs, fstab, keypaths, primitives, programs, yaml_subset
from opsverify.facts.agent import main as agent_main
from opsverify.facts.agent import scan as agent_scan
from opsverify.facts.host_params import remote_params, validate_params
from opsverify.redact import SECRET_NAME
from opsverify.ssot import load

FACTS = Path(commands.__file__).parent
CANARY = "CANARY-s3cr3t-9f8e7d"  # a secret value; must never appear in any fact
PY38 = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.8*/bin/python3.8")))


def run_script(params: dict, python: str = "python3", limit: int = 20) -> dict:
    """Run the exact host command here, through sh, and return the facts it prints."""
    argv = shlex.split(commands.facts_command(commands.script_payload(), params, limit))
    argv[argv.index("python3")] = python
    proc = subprocess.run(["sh", "-c", shlex.join(argv)], capture_output=True, timeout=limit + 5,
                          check=False)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    out = proc.stdout.decode()
    return json.loads(out[out.rindex(commands.SENTINEL) + len(commands.SENTINEL):])


def line_of(path: Path, needle: str) -> int:
    return next(n for n, line in enumerate(path.read_text().split("\n"), 1) if needle in line)


class Tree:
    """A host's stack directory and config root, with stale addresses in every format."""

    def __init__(self, tmp: Path):
        self.root, self.docker, self.stack = tmp, tmp / "docker", tmp / "stack"
        for d in ("jellyseerr", "jellyfin/plugins/configurations", "recyclarr", "prowlarr",
                  "media", "live"):
            (self.docker / d).mkdir(parents=True)
        (self.stack / "sub").mkdir(parents=True)
        (tmp / "outside").mkdir()
        self.json = self.docker / "jellyseerr" / "settings.json"
        self.json.write_text(json.dumps({
            "main": {"apiKey": CANARY},
            "jellyfin": {"ip": "jellyfin", "port": 8096, "apiKey": CANARY},
            "radarr": [{"hostname": "100.107.36.76", "port": 7878, "apiKey": CANARY}],
            "sonarr": [{"hostname": "100.117.1.53", "port": 8989, "note": "ctx-json"}]},
            indent=2))
        self.xml = self.docker / "jellyfin/plugins/configurations/HomeScreenSections.xml"
        self.xml.write_text(
            '<?xml version="1.0" encoding="utf-8"?>\n<PluginConfiguration '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
            "  <RadarrUrl>http://100.107.36.76:7878</RadarrUrl>\n"
            "  <SonarrUrl>http://100.117.1.53:8989</SonarrUrl><!-- ctx-xml -->\n"
            f"  <RadarrApiKey>{CANARY}</RadarrApiKey>\n</PluginConfiguration>\n")
        self.yaml = self.docker / "recyclarr" / "recyclarr.yml"
        self.yaml.write_text(
            "radarr:\n  main:\n    base_url: http://radarr:7878\n"
            f"    api_key: {CANARY}\nsonarr:\n  main:\n"
            "    base_url: http://100.92.156.118:8989  # ctx-yaml\n")
        self.decoys = self.docker / "notes.txt"
        self.decoys.write_text("100.117.1.530\n1100.117.1.53\n100.117.1.53.4\nctx-decoy\n")
        (self.docker / "media" / "poster.jpg").write_bytes(
            b"\xff\xd8\xff\xe0 100.117.1.53 " + b"\0" * 100)
        big = self.docker / "media" / "huge.bin"
        with open(big, "wb") as f:
            f.truncate(65 * 1024 * 1024)  # sparse: costs nothing, still over the 64 MiB limit
        (tmp / "outside" / "secret.txt").write_text("100.117.1.53\n")
        (self.docker / "link.txt").symlink_to(tmp / "outside" / "secret.txt")
        (self.docker / "linkdir").symlink_to(tmp / "outside")
        os.mkfifo(self.docker / "pipe")  # opening it would block a naive reader
        self.db = self.docker / "prowlarr" / "prowlarr.db"
        self._prowlarr(self.db)
        self.live_db = self.docker / "live" / "app.db"
        self.writer = self._live(self.live_db)
        self.compose = self.stack / "docker-compose.yml"
        self.compose.write_text(
            "services:\n  radarr:\n    environment:\n"
            "      - RADARR_API_KEY=${RADARR_API_KEY}\n"
            f"      - SONARR_API_KEY={CANARY}\n")
        (self.stack / ".env").write_text(f"RADARR_API_KEY={CANARY}\nTZ=UTC\n")
        (self.stack / "sub" / "app.env").write_text(f"export SONARR_API_KEY={CANARY}\n")

    @staticmethod
    def _prowlarr(path: Path) -> None:
        """Prowlarr's Applications table from the real sample, in WAL mode, closed cleanly."""
        sql = samples.text("prowlarr_applications_table_RECONSTRUCTED.sql")
        con = sqlite3.connect(path)
        con.execute("PRAGMA journal_mode=WAL")
        con.executescript(sql)
        con.execute('INSERT INTO Applications (Name, Implementation, Settings, SyncLevel) '
                    'VALUES (?, ?, ?, 2)', ("Sonarr", "Sonarr", json.dumps(
                        {"baseUrl": "http://100.117.1.53:8989", "apiKey": CANARY}, indent=2)))
        con.execute("CREATE TABLE Blobs (Id INTEGER PRIMARY KEY, Data BLOB, N INTEGER)")
        con.execute("INSERT INTO Blobs VALUES (7, ?, 100117153)", (b"\x00\x01100.92.156.118\x02",))
        con.execute("CREATE TABLE Tags (Label TEXT PRIMARY KEY, Url TEXT) WITHOUT ROWID")
        con.execute("INSERT INTO Tags VALUES ('x', 'http://100.117.1.530:1')")  # a decoy
        con.commit()
        con.close()

    @staticmethod
    def _live(path: Path) -> sqlite3.Connection:
        """A WAL database still open for writing: its newest rows live only in the -wal file."""
        con = sqlite3.connect(path)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA wal_autocheckpoint=0")
        con.execute("CREATE TABLE T (Url TEXT)")
        con.execute("INSERT INTO T VALUES ('http://100.92.156.118:1')")
        con.commit()
        return con

    def params(self, **overrides: object) -> dict:
        p = {
            "host": "lab", "budget_s": 15, "secret_name": SECRET_NAME.pattern,
            "files": {"mounts": "/proc/mounts", "fstab": str(self.root / "fstab"),
                      "docker_socket": str(self.root / "docker.sock")},
            "zfs": False, "pinned_env": {},
            "stacks": {"s": {"directory": str(self.stack), "compose": str(self.compose)}},
            "secret_keys": ["RADARR_API_KEY", "SONARR_API_KEY"],
            "plaintext_globs": [".env", "*.env", ".env.*"],
            "retired": ["100.117.1.53", "100.92.156.118"],
            "config_roots": [str(self.docker), str(self.stack)],
            "config_checks": [
                {"name": "json", "file": str(self.json), "format": "json", "table": None,
                 "row": {}, "keys": ["jellyfin.ip", "jellyfin.port", "radarr.*.hostname"]},
                {"name": "xml", "file": str(self.xml), "format": "xml", "table": None, "row": {},
                 "keys": ["PluginConfiguration.RadarrUrl"]},
                {"name": "yaml", "file": str(self.yaml), "format": "yaml", "table": None,
                 "row": {}, "keys": ["radarr.*.base_url"]},
                {"name": "sqlite", "file": str(self.db), "format": "sqlite",
                 "table": "Applications", "row": {"Name": "Radarr"},
                 "keys": ["Settings.baseUrl", "SyncLevel"]},
                {"name": "secret", "file": str(self.json), "format": "json", "table": None,
                 "row": {}, "keys": ["jellyfin.apiKey"]},
                {"name": "missing", "file": str(self.root / "nope.json"), "format": "json",
                 "table": None, "row": {}, "keys": ["a"]},
            ],
        }
        p.update(overrides)
        return p

    def snapshot(self) -> dict[str, tuple[int, int, int]]:
        """Every file and directory with its size, mtime and ctime."""
        out = {}
        for dirpath, dirnames, filenames in os.walk(self.root):
            for name in dirnames + filenames:
                st = os.lstat(os.path.join(dirpath, name))
                out[os.path.join(dirpath, name)] = (st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        return out


@pytest.fixture
def tree(tmp_path: Path):
    t = Tree(tmp_path)
    yield t
    t.writer.close()


@pytest.mark.parametrize("python", ["python3", *PY38[:1]], ids=os.path.basename)
def test_the_script_reads_a_real_tree_and_changes_nothing(tree: Tree, python: str) -> None:
    before = tree.snapshot()
    facts = run_script(tree.params(), python)
    assert tree.snapshot() == before  # no -wal/-shm/-journal appeared, nothing was touched
    assert not list(tree.docker.glob("prowlarr/prowlarr.db-*"))

    text = json.dumps(facts)
    assert CANARY not in text and "c2960dcc" not in text  # secret values
    assert "ctx-" not in text and "Sonarr" not in text.replace('"Sonarr"', "")  # no content

    refs = {(r["address"], r["file"], r["line"], r["table"], r["row"], r["column"])
            for r in facts["stale_refs"]}
    d = tree.docker
    assert refs == {
        ("100.117.1.53", str(tree.json), line_of(tree.json, "100.117.1.53"), None, None, None),
        ("100.117.1.53", str(tree.xml), 4, None, None, None),
        ("100.92.156.118", str(tree.yaml), 7, None, None, None),
        ("100.117.1.53", str(tree.db), None, "Applications", 2, "Settings"),
        ("100.92.156.118", str(tree.db), None, "Blobs", 7, "Data"),
        ("100.92.156.118", str(d / "live" / "app.db-wal"), None, None, None, None),
    }
    scan = facts["scan"]
    assert scan["complete"] is True and scan["media_skipped"] == 1
    skipped = {(s["path"], s["reason"]) for s in scan["skipped"]}
    assert (str(d / "link.txt"), "symbolic link, not followed") in skipped
    assert (str(d / "linkdir"), "symbolic link, not followed") in skipped
    assert (str(d / "media" / "huge.bin"), "larger than 64 MiB") in skipped


def test_secrets_on_the_host_are_names_and_kinds(tree: Tree) -> None:
    facts = run_script(tree.params())
    stack = facts["stacks"]["s"]
    assert stack["exists"] and stack["complete"]
    assert sorted(stack["plaintext_files"], key=lambda f: f["path"]) == [
        {"path": str(tree.stack / ".env"), "keys": ["RADARR_API_KEY"], "mode": "0644"},
        {"path": str(tree.stack / "sub" / "app.env"), "keys": ["SONARR_API_KEY"],
         "mode": "0644"}]
    assert stack["compose"] == {"path": str(tree.compose), "exists": True, "error": None,
                                "secrets": {"RADARR_API_KEY": {"kind": "reference", "line": 4},
                                            "SONARR_API_KEY": {"kind": "literal", "line": 5}}}


def test_config_values_in_every_format(tree: Tree) -> None:
    config = run_script(tree.params())["config"]
    assert config["json"] == {"file": str(tree.json), "ok": True, "error": None, "values": {
        "jellyfin.ip": ["jellyfin"], "jellyfin.port": [8096],
        "radarr.*.hostname": ["100.107.36.76"]}}
    assert config["xml"]["values"] == {"PluginConfiguration.RadarrUrl":
                                       ["http://100.107.36.76:7878"]}
    assert config["yaml"]["values"] == {"radarr.*.base_url": ["http://radarr:7878"]}
    assert config["sqlite"]["values"] == {"Settings.baseUrl": ["http://radarr:7878"],
                                          "SyncLevel": [2]}
    assert config["secret"] == {"file": str(tree.json), "ok": False, "values": {},
                                "error": "refused: key path jellyfin.apiKey names a secret"}
    assert config["missing"]["ok"] is False
    assert config["missing"]["error"] == f"file not found: {tree.root / 'nope.json'}"


def test_sqlite_check_errors_are_clear(tree: Tree) -> None:
    check = {"name": "x", "file": str(tree.db), "format": "sqlite", "table": "Nope",
             "row": {}, "keys": ["a"]}
    got = configs.config_values(check, SECRET_NAME)
    assert got["error"] == "SQLite: no table 'Nope'"
    got = configs.config_values({**check, "table": "Applications", "row": {"Bad": 1}}, SECRET_NAME)
    assert got["error"] == "SQLite: table 'Applications' has no column 'Bad'"


def test_missing_host_programs_and_sockets_are_facts_not_failures(tree: Tree) -> None:
    facts = run_script(tree.params(zfs=True))
    assert facts["tailscale"]["ok"] is False
    assert facts["zfs"]["ok"] is False and facts["zfs"]["datasets"] == []
    assert facts["docker"] == {"ok": False, "containers": [],
                               "error": f"no Docker socket at {tree.root / 'docker.sock'}"}
    assert facts["fstab"] == [] and "fstab" in facts["errors"]  # no such file here
    assert facts["hostname"] and facts["mounts"]


def test_fake_programs_on_the_path_are_parsed(tmp_path: Path, monkeypatch) -> None:
    """tailscale and zfs are found on PATH or in sbin and parsed; a failing one gives stderr."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    sample = samples.path("tailscale_status_json_RECONSTRUCTED.json")
    (bin_dir / "tailscale").write_text(f"#!/bin/sh\ncat {sample}\n")
    (bin_dir / "zfs").write_text("#!/bin/sh\necho 'cannot open: no pool' >&2\nexit 1\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    ctx = primitives.Context({"budget_s": 5}, time.monotonic() + 5)
    assert programs.tailscale_facts(ctx)["tailscale"] == {
        "ok": True, "error": None, "backend_state": "Running", "online": True,
        "ips": ["100.107.222.96", "fd7a:115c:a1e0::6e39:de61"]}
    assert programs.zfs_facts(ctx)["zfs"] == {"ok": False, "error": "cannot open: no pool",
                                       "datasets": []}


def test_only_the_listed_programs_run(tree: Tree, monkeypatch) -> None:
    ran: list[list[str]] = []

    class Done:
        returncode, stdout, stderr = 0, b"{}", b""

    monkeypatch.setattr(programs.shutil, "which", lambda name, path=None: f"/fake/{name}")
    monkeypatch.setattr(programs.subprocess, "run", lambda argv, **kw: ran.append(argv) or Done())
    agent_main.collect(tree.params(zfs=True))
    allowed = {tuple(argv[1:]) for argv in commands.HOST_ARGV.values()}
    assert ran and all(tuple(a[1:]) in allowed and a[0].startswith("/fake/") for a in ran)


def test_a_hung_section_costs_only_itself(monkeypatch) -> None:
    monkeypatch.setattr(fstab, "fstab_facts", lambda ctx: time.sleep(30))
    started = time.monotonic()
    facts = agent_main.collect({"budget_s": 1.0, "config_roots": []})
    assert time.monotonic() - started < 5
    assert facts["errors"] == {
        "fstab": "did not finish within 1.0 s (hung filesystem?)",
        **{s: "not run: fstab did not finish"
           for s in ("docker", "stacks", "config", "stale_refs")}}
    assert facts["hostname"] and facts["mounts"]  # what ran before it is kept
    assert facts["tailscale"]["error"] != "not collected"  # its own lane went on


def test_the_scan_stops_at_its_budget(tree: Tree) -> None:
    ctx = primitives.Context(tree.params(), deadline=time.monotonic() - 1)
    facts = agent_scan.Scan(ctx).run()
    assert facts["scan"]["complete"] is False
    assert any(s["reason"].startswith("time budget exhausted") for s in facts["scan"]["skipped"])
    assert facts["stale_refs"] == []


def test_bad_params_are_reported_not_raised() -> None:
    proc = subprocess.run(["python3", "-I", "-S", "-c", commands.BOOTSTRAP,
                           commands.script_payload(), "not base64!"], capture_output=True,
                          check=False)
    out = proc.stdout.decode()
    facts = json.loads(out[out.rindex(commands.SENTINEL) + len(commands.SENTINEL):])
    assert proc.returncode == 0 and facts["errors"] == {"params": "PARAMS is not base64 JSON"}


# --- the audit: what can run on a host --------------------------------------------------------

def test_check_accepts_exactly_the_facts_command() -> None:
    params = {"host": "x", "retired": ["100.117.1.53"]}
    command = commands.facts_command(commands.script_payload(), params, 7)
    assert commands.check(command) == params
    assert shlex.split(command)[:8] == ["env", "-i", f"PATH={commands.SYSTEM_PATH}", "LC_ALL=C",
                                        "timeout", "-k", "1", "7"]
    script = commands.script_payload()
    tampered = commands.facts_command(script[:-8] + "AAAAAAA=", params, 7)
    for bad in (command + "; touch /tmp/x", command.replace("python3", "python2"),
                command.replace(" 7 ", " 0 "), command.replace(" -I ", " "),
                command.replace("timeout -k 1", "timeout -k 9"), "  " + command, tampered,
                command.replace(commands.encode_params(params), "e30K"),  # "{}\n" isn't canonical
                "touch /tmp/x", "'unbalanced"):
        with pytest.raises(ValueError, match="not a remote command of commands.py|PARAMS"):
            commands.check(bad)
    with pytest.raises(ValueError, match="unknown remote parameters"):
        commands.facts_command(script, {"shell": "rm -rf /"}, 7)


def test_the_script_is_the_module_source() -> None:
    modules = commands.script_modules(commands.script_payload())
    for name in commands.AGENT_MODULES:
        assert modules[name] == (FACTS.parents[1] / (name.replace(".", "/") + ".py")).read_text()
    assert [modules[p] for p in commands.AGENT_PACKAGES] == [""] * len(commands.AGENT_PACKAGES)


def test_describe_shows_the_script_by_hash_and_the_parameters() -> None:
    command = commands.facts_command(commands.script_payload(), {"host": "vm209"}, 5)
    shown = commands.describe(command)
    assert "<BOOTSTRAP>" in shown and "sha256:" in shown and '{"host":"vm209"}' in shown
    assert len(shown) < 500


def _calls(tree: ast.AST) -> list[tuple[str, ast.Call, str]]:
    """(dotted callee, call, enclosing function) for every call."""
    out = []

    def visit(node: ast.AST, func: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = child.name if isinstance(child, (ast.FunctionDef, ast.ClassDef)) else func
            if isinstance(child, ast.Call):
                out.append((ast.unparse(child.func), child, func))
            visit(child, name)

    visit(tree, "")
    return out


SENT_MODULES = [FACTS.parents[1] / (m.replace(".", "/") + ".py")
                for m in commands.AGENT_MODULES]  # all of them


@pytest.mark.parametrize("path", SENT_MODULES, ids=lambda p: p.name)
def test_the_sent_modules_only_read(path: Path) -> None:
    source = path.read_text()
    tree = ast.parse(source, feature_version=(3, 8))  # hosts run Python >= 3.8
    for word in ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND", "Popen", "os.system",
                 "check_output", "check_call", "AF_INET", "POST", "DELETE"):
        assert word not in source, f"{path.name} mentions {word}"
    # the one TCP connection is a probe's GET (agent/probes.py); the Docker socket gets GETs
    assert ("create_connection" in source) == (path.name == "probes.py"), path.name
    for callee, call, func in _calls(tree):
        if callee.endswith(("create_connection", "sendall")):
            assert (path.name, func) in {("probes.py", "get"), ("docker.py", "docker_get")}, \
                (callee, func)
        root, _, attr = callee.partition(".")
        if root == "os":
            assert attr in {"open", "fdopen", "fstat", "lstat", "stat", "walk", "listdir",
                            "path.join", "path.islink", "path.isdir", "path.isfile",
                            "path.exists", "path.dirname", "path.basename", "path.abspath",
                            "path.relpath", "path.isabs", "pathsep.join", "environ.get"}, callee
        if root in ("shutil", "subprocess"):
            assert callee in ("shutil.which", "subprocess.run") and func == "run_program", callee
        if callee == "open":
            assert len(call.args) < 2 and not any(k.arg == "mode" for k in call.keywords), callee
        if callee.endswith(".connect") and func == "open_sqlite":
            assert "mode=ro&immutable=1" in ast.unparse(call)
        if callee.endswith("connect"):
            assert func in ("open_sqlite", "docker_get"), (callee, func)
        if callee.endswith("execute"):
            text = ast.unparse(call.args[0]) if call.args else ""
            assert any(text.lstrip("f'\"").startswith(w) for w in ("SELECT", "PRAGMA")), text


def test_the_only_docker_requests_are_gets() -> None:
    assert commands.DOCKER_METHOD == "GET"
    assert set(commands.DOCKER_GETS.values()) == {"/containers/json?all=1",
                                                  "/containers/{id}/json"}
    assert commands.HOST_ARGV == {
        "tailscale_status": ("tailscale", "status", "--json"),
        "zfs_list": ("zfs", "list", "-H", "-o", "name", "-t", "filesystem")}


# --- parameters from the SSOT ----------------------------------------------------------------

def test_params_from_the_ssot() -> None:
    ssot = load()
    vm209, vm210, pve = (remote_params(ssot, h) for h in ("vm209", "vm210", "pve"))
    assert pve["zfs"] is True and vm209["zfs"] is False and pve["stacks"] == {}
    assert vm210["pinned_env"] == {"watchtower": ["DOCKER_API_VERSION"]}
    assert vm209["stacks"] == {"download-stack": {
        "directory": "/opt/stacks/download-stack",
        "compose": "/opt/stacks/download-stack/docker-compose.yml",
        "roots": ["/mnt/docker", "/opt/stacks/download-stack"], "generated": []}}
    assert vm210["stacks"]["streaming-stack"]["generated"] == [
        {"path": "/opt/stacks/streaming-stack/.env", "unit": "streaming-stack.service"}]
    assert vm210["mount_paths"] == ["/mnt/docker", "/mnt/media"]
    [prowlarr] = [c for c in vm209["config_checks"] if c["format"] == "sqlite"]
    assert prowlarr == {"name": "prowlarr->radarr", "file": "/mnt/docker/prowlarr/prowlarr.db",
                        "format": "sqlite", "keys": ["Settings.baseUrl"],
                        "table": "Applications", "row": {"Name": "Radarr"},
                        "container": "prowlarr"}
    assert vm209["retired"] == ["100.117.1.53", "100.92.156.118"]
    assert "RADARR_API_KEY" in vm210["secret_keys"]  # every SSOT key, on every host


@pytest.mark.parametrize("change, message", [
    (lambda p: p["config_roots"].append("relative/dir"), "config root: 'relative/dir' is not"),
    (lambda p: p["retired"].append("100.117.1"), "retired address '100.117.1' is not"),
    (lambda p: p["plaintext_globs"].append("a/.env"), "must be a file name pattern"),
    (lambda p: p["secret_keys"].append("A B"), "secret key: 'A B' is not a variable name"),
    (lambda p: p["config_checks"][0].update(format="ini"), "format 'ini' is not one of"),
    (lambda p: p["mount_paths"].append("mnt/x"), "mount point: 'mnt/x' is not"),
    (lambda p: p["stacks"]["download-stack"]["roots"].append("x"), "config root: 'x' is not"),
    (lambda p: p["stacks"]["download-stack"]["generated"].append(
        {"path": "/opt/.env", "unit": "x; rm -rf /"}), "is not a systemd service name"),
    (lambda p: p["config_checks"][0].update(keys=["a..b"]), "invalid key path 'a..b'"),
])
def test_bad_params_are_refused_with_the_value(change, message: str) -> None:
    params = remote_params(load(), "vm209")
    change(params)
    with pytest.raises(ValueError, match=message):
        validate_params(params)


def test_parsers_errors_never_quote_content() -> None:
    secret = "hunter2-" + CANARY
    for call in (lambda: fstab.parse_proc_mounts(secret),
                 lambda: keypaths.json_values('{"a": ' + secret, "a"),
                 lambda: keypaths.xml_values("<a>" + secret, "a"),
                 lambda: yaml_subset.parse_yaml_subset("a: 1\n" + secret + "\n"),
                 lambda: programs.parse_tailscale_status(secret)):
        with pytest.raises(ValueError) as exc:
            call()
        assert CANARY not in str(exc.value)
    # a broken fstab line is an error of that line, named by number, never by its content
    for line in (secret, f"{secret} /mnt/x nfs4 ro,password={secret} # {secret}"):
        entries, errors = fstab.parse_fstab(line + "\n")
        assert entries == [] and len(errors) == 1 and CANARY not in errors[0]["error"]
