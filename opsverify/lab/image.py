"""The one local image every twin container runs: busybox, twin-httpd and node-exporter.

No registry is reachable, so the image is assembled from Debian's own binaries, imported into
each VM's engine and tagged with every image reference the SSOT names.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

from .layout import LabError
from .prereq import which
from .proc import run

HTTPD_SRC = Path(__file__).parent / "httpd" / "twin_httpd.c"
NE_DIR = "usr/lib/node-exporter"


def build_rootfs(image_dir: Path) -> Path:
    """Assemble the image's files and write them as a tar; returns the tar's path."""
    image_dir.mkdir(parents=True, exist_ok=True)
    httpd = image_dir / "twin-httpd"
    digest = hashlib.sha256(HTTPD_SRC.read_bytes()).hexdigest()[:16]
    stamp = image_dir / "twin-httpd.src"
    if not httpd.exists() or not stamp.exists() or stamp.read_text() != digest:
        run(["gcc", "-static", "-O2", "-o", str(httpd), str(HTTPD_SRC)])
        stamp.write_text(digest)
    busybox = Path(which("busybox") or "/bin/busybox")
    exporter = Path(which("prometheus-node-exporter") or "")
    if not exporter.is_file():
        raise LabError("prometheus-node-exporter not found: apt-get install "
                       "prometheus-node-exporter")
    applets = run([str(busybox), "--list"]).stdout.split()
    tar_path = image_dir / "rootfs.tar"
    with tarfile.open(tar_path, "w") as tar:
        for d in ("bin", "etc", "tmp", "config", "proc", "sys", "dev", "twin", "lib64", "usr",
                  "usr/lib", NE_DIR):
            _dir(tar, d, 0o1777 if d == "tmp" else 0o755)
        _file(tar, "bin/busybox", busybox.read_bytes(), 0o755)
        for a in applets:
            if a != "busybox":
                _link(tar, f"bin/{a}", "busybox")
        _file(tar, "twin/httpd", httpd.read_bytes(), 0o755)
        # node-exporter is dynamically linked. Its libraries stay off the default search path:
        # a libc.so.6 there makes the static busybox crash when glibc's NSS dlopen()s it.
        _file(tar, f"{NE_DIR}/node_exporter", exporter.read_bytes(), 0o755)
        for lib in _libs(exporter):
            name = lib.lstrip("/") if "ld-linux" in lib else f"{NE_DIR}/{Path(lib).name}"
            _file(tar, name, Path(lib).read_bytes(), 0o755)
        _file(tar, "bin/node_exporter", f"#!/bin/sh\nLD_LIBRARY_PATH=/{NE_DIR} exec "
                                        f"/{NE_DIR}/node_exporter \"$@\"\n".encode(), 0o755)
        _file(tar, "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"
                                 b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n", 0o644)
        _file(tar, "etc/group", b"root:x:0:\nnogroup:x:65534:\n", 0o644)
    return tar_path


def _libs(binary: Path) -> list[str]:
    """Shared libraries a dynamically linked binary needs (none for a static one)."""
    out = run(["ldd", str(binary)], check=False).stdout
    libs = []
    for line in out.splitlines():
        parts = line.split()
        path = parts[2] if "=>" in parts and len(parts) > 2 else parts[0] if parts else ""
        if path.startswith("/") and os.path.exists(path):
            libs.append(path)
    return sorted(set(libs))


def _dir(tar: tarfile.TarFile, name: str, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, mode
    tar.addfile(info)


def _file(tar: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
    parent = os.path.dirname(name)
    if parent and parent not in tar.getnames():
        _dir(tar, parent, 0o755)
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    tar.addfile(info, io.BytesIO(data))


def _link(tar: tarfile.TarFile, name: str, target: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
    tar.addfile(info)


def split_ref(ref: str) -> tuple[str, str]:
    """`ghcr.io/ajnart/homarr:latest` -> (`ghcr.io/ajnart/homarr`, `latest`)."""
    if "@" in ref:
        raise LabError(f"image {ref}: the lab cannot reproduce a digest-pinned image; "
                       "pin a tag in the SSOT")
    name, _, tag = ref.rpartition(":")
    if not name or "/" in tag:
        return ref, "latest"
    return name, tag


def import_image(client: object, tar_path: Path, refs: list[str]) -> str:
    """Import the rootfs into an engine and tag it with every reference; returns the image id."""
    api = client.api  # type: ignore[attr-defined]
    with open(tar_path, "rb") as fh:
        repo, tag = split_ref(refs[0])
        api.import_image_from_data(fh.read(), repository=repo, tag=tag,
                                   changes=["ENV PATH=/bin", "WORKDIR /"])
    image_id = api.inspect_image(refs[0])["Id"]
    for ref in refs[1:]:
        repo, tag = split_ref(ref)
        api.tag(image_id, repo, tag)
    return image_id

