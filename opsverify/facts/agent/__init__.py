"""The host agent: the stdlib-only fact script that runs ON each host, reads only, prints JSON.

Every module of this package is sent to the hosts as source text, with commands.py, by
commands.script_payload() (commands.AGENT_MODULES lists them in load order), so each must stay
stdlib-only and run on Python 3.8; commands.check() compares the payload of a command with the
one this checkout builds, byte for byte. One module, one job:

- primitives: what they all share: content-free errors, bounded reads, the deadline, SQLite
- keypaths: values at dotted key paths, secrets only as present/absent (also the verifier's)
- yaml_subset: a YAML reader without PyYAML
- fstab, programs, docker, stacks, configs, envfiles, scan: the sections of the facts
- main: main() and collect(), which run the sections under the time budget

On the host this file's code never runs: the bootstrap registers the package as an empty module.
"""
