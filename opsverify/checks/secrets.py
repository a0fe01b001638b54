"""secrets: no plaintext secret files in a stack directory, compose references secrets as
${VAR} only, and every SSOT key exists in Infisical (secret imports count). Names only, never
values."""

from __future__ import annotations

from typing import Any

from opsverify.ssot.model import SecretPath, Stack

from . import Check, require_sections


def check_stack(stack: Stack, facts: dict[str, Any]) -> Check:
    """No plaintext secrets file under the stack directory; no literal secret in compose."""
    require_sections(stack.host, facts, "stacks")
    c = Check(f"Secrets {stack.host}:{stack.name}")
    got = (facts.get("stacks") or {}).get(stack.name)
    c.saw("stack", got)
    if got is None:
        c.require(False, f"stack directory {stack.directory}: not scanned")
        return c
    if not got.get("exists"):
        c.require(False, f"stack directory {stack.directory}: does not exist")
        return c
    c.require(got.get("complete", True) is not False,
              f"stack directory {stack.directory}: scan incomplete, so not known clean")
    for f in got.get("plaintext_files") or []:
        keys = f.get("keys") or []
        c.require(False, f"plaintext secrets file {f.get('path')} "
                         f"({'keys: ' + ', '.join(keys) if keys else 'no SSOT key names in it'}); "
                         "secrets belong in Infisical")
    compose = got.get("compose") or {}
    path = compose.get("path") or stack.compose_path
    if compose.get("error") or not compose.get("exists"):
        c.require(False, f"compose file {path}: {compose.get('error') or 'not found'}")
        return c
    for key, use in sorted((compose.get("secrets") or {}).items()):
        c.require(use.get("kind") == "reference",
                  f"{path}:{use.get('line')}: {key} is a literal value, expected ${{{key}}}")
    return c


def check_path(secret_path: SecretPath, facts: dict[str, Any]) -> Check:
    """Every SSOT key exists at its Infisical path, its own or through a secret import
    (presence only); the evidence names the import each imported key came from."""
    c = Check(f"Infisical {secret_path.path}")
    got = (facts.get("paths") or {}).get(secret_path.path)
    present = set((got or {}).get("keys") or [])
    imported = (got or {}).get("imported") or {}
    c.saw("infisical", {"expected": list(secret_path.keys), "present": sorted(present),
                        "imported_from": {k: v for k, v in sorted(imported.items())
                                          if k in secret_path.keys},
                        "imports": (got or {}).get("imports") or [],
                        "path_found": got is not None})
    missing = [k for k in secret_path.keys if k not in present]
    # An import that offers nothing is often one the identity may not read (Infisical drops
    # the secrets of a source the caller cannot read, and keeps the import): say so.
    empty = [i["from"] for i in (got or {}).get("imports") or [] if not i.get("keys")]
    c.require(not missing, f"missing keys: {', '.join(missing)}"
                           + ("" if got is not None else " (path not found)")
                           + (f" (imports with no key this identity may read: "
                              f"{', '.join(empty)})" if empty else ""))
    return c
