"""Fact collection: hosts over SSH, APIs over HTTP(S); cached, saved and replayed.

Collectors produce facts; gates compare them with the SSOT. The contract between the two is
opsverify/facts/contract.py: one JSON Schema (draft 2020-12) per kind of source -- `host:<name>`
(one remote command per host, opsverify/facts/commands.py) and the APIs `cloudflare`,
`infisical`, `proxmox`, `prometheus` and `http` -- each a JSON object, saved by
`--save-facts DIR` as DIR/<source>.json (":" -> "-") and replayed by `--facts DIR`. A source
that gave no facts is saved as a record: {"unreachable": "<reason>"} (could not be asked) or
{"error": "<reason>"} (its facts broke the contract). The store (store.py) enforces the
contract as facts are collected, saved and replayed; `python -m opsverify.facts.contract DIR`
checks a directory of saved facts.

Facts never hold a secret value: secrets are reported by name, and config files by the values
of the keys the SSOT names: a value at or below a key that names a secret
(agent/keypaths.SECRET_NAME) only as "<secret: present>" or "<secret: absent>", a `*` path only its
scalar leaves, never a subtree (likewise a probe's `json`). A contract violation is reported
by JSON path and type, never by value.
"""

import importlib
import sys
import types


class _OnFirstUse(types.ModuleType):
    """Stands in for a module until an attribute of it is asked for, then imports it."""

    __spec__ = None  # `import NAME` finds this in sys.modules and asks nothing more of it

    def __getattr__(self, attr: str):
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), attr)


# paramiko imports invoke (~45 ms: asyncio, unittest.mock, a YAML parser) only to run an ssh_config
# `Match exec` line; most configs have none, and then it is never imported at all.
sys.modules.setdefault("invoke", _OnFirstUse("invoke"))
