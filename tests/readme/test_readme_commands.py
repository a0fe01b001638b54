"""Every command block of README.md, copied verbatim, works from this clone without an
activated venv: run from a shell whose PATH holds only the system's directories.

Each fenced block carries a marker comment saying how it is run:
  here            the block as one bash script, in the clone's directory
  twin            the same, inside the lab twin's network (the SSOT's hosts live only there)
  twin shorten    as twin, with soak durations cut to seconds (`--every 2s --for 6s`)
  output          `$ ` lines are commands; the lines after each are its exact output
  text            not a command (a directory listing)
  skip: REASON    not run here, and the README says why
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from opsverify.lab import prereq

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
TWIN = "readme"  # a twin of its own: the README's `ops lab down` must not take another's away
MARKER = re.compile(r"<!-- readme-test: (here|twin shorten|twin|output|text|skip: .+?) -->\n"
                    r"```[a-z]*\n(.*?)```", re.DOTALL)
KINDS = ("here", "twin", "twin shorten", "output", "text")


@dataclass(frozen=True)
class Block:
    line: int
    kind: str
    body: str

    @property
    def id(self) -> str:
        return f"README.md:{self.line}:{self.kind.split(':')[0].replace(' ', '-')}"


def blocks() -> list[Block]:
    text = README.read_text()
    return [Block(text.count("\n", 0, m.start()) + 1, m[1], m[2]) for m in MARKER.finditer(text)]


def test_every_fenced_block_says_how_it_is_tested() -> None:
    fences = len(re.findall(r"^```", README.read_text(), re.MULTILINE)) // 2
    assert fences == len(blocks()), "a ``` block of README.md has no <!-- readme-test: ... -->"
    assert all(b.kind in KINDS or b.kind.startswith("skip: ") for b in blocks())


def environment(tmp: Path) -> dict[str, str]:
    """A fresh root shell's environment: no venv, the system's PATH, this test's own twin."""
    keep = {k: os.environ[k] for k in ("HOME", "LANG", "TERM") if k in os.environ}
    return {**keep, "PATH": SYSTEM_PATH, "OPSVERIFY_LAB_NAME": TWIN,
            "OPSVERIFY_SOAK_DIR": str(tmp / "soak"),
            "OPSVERIFY_NETGUARD": os.environ.get("OPSVERIFY_NETGUARD", "1")}


def bash(script: str, env: dict[str, str], inside_twin: bool = False,
         timeout: float = 600) -> subprocess.CompletedProcess:
    """The script under `bash -eu -o pipefail`, its output and errors together."""
    argv = ["bash", "-euo", "pipefail", "-c", script]
    if inside_twin:
        argv = [sys.executable, "-m", "opsverify.cli", "lab", "exec", "--", *argv]
    return subprocess.run(argv, cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return environment(tmp_path_factory.mktemp("readme"))


@pytest.fixture(scope="module")
def lab(env: dict[str, str]) -> Iterator[dict[str, str]]:
    """The README's own twin: down after the module (a block may take it down before)."""
    missing = prereq.missing()
    if missing:
        pytest.fail("lab twin prerequisites missing: " + "; ".join(missing))
    yield env
    bash(f"{sys.executable} -m opsverify.cli lab down", env, timeout=300)


@pytest.fixture
def twin(lab: dict[str, str]) -> dict[str, str]:
    """The README's twin up (reused when it is: `ops lab up` then only resets it)."""
    up = bash(f"{sys.executable} -m opsverify.cli lab up", lab, timeout=300)
    assert up.returncode == 0, up.stdout[-2000:]
    return lab


def shorten(script: str) -> str:
    return re.sub(r"--for \S+", "--for 6s", re.sub(r"--every \S+", "--every 2s", script))


@pytest.mark.parametrize("block", [b for b in blocks() if b.kind in KINDS[:3]], ids=lambda b: b.id)
def test_readme_block_works_as_typed(block: Block, twin: dict[str, str]) -> None:
    script = shorten(block.body) if block.kind == "twin shorten" else block.body
    proc = bash(script, twin, inside_twin=block.kind.startswith("twin"))
    assert proc.returncode == 0, f"{block.id} failed:\n{proc.stdout[-3000:]}"


@pytest.mark.parametrize("block", [b for b in blocks() if b.kind == "output"], ids=lambda b: b.id)
def test_readme_output_is_what_the_command_prints(block: Block, env: dict[str, str]) -> None:
    """Each `$ command` prints exactly the lines the README shows after it."""
    steps: list[tuple[str, list[str]]] = []
    for line in block.body.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            steps[-1][1].append(line)
    for command, expected in steps:
        shown = bash(command, env).stdout.splitlines()
        assert shown == expected, f"{block.id}: `{command}` printed:\n" + "\n".join(shown)
