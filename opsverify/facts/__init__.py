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
