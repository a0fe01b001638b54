"""How far a failed request got: no path from the verifier, no connection, or an answer.

A probe's failure is drift only when its host answers. When the verifier has no path at all (no
route, the network unreachable, a name that does not resolve), nothing is known about the
service: UNREACHABLE. When a connection was refused or timed out, the services gate asks whether
the host itself answers (its SSH facts): FAIL if it does, UNREACHABLE if not. Anything after a
connection (no answer in time, TLS, a wrong status) is the service's: FAIL.

The reasons read here are api_client's (`Api.request`): the errno text without its number, and
"timed out after N s (connect)" for a connect timeout.
"""

from __future__ import annotations

NO_PATH = ("network is unreachable", "no route to host", "host is unreachable",
           "name or service not known", "temporary failure in name resolution",
           "no address associated with hostname", "nodename nor servname")


def no_path(reason: str) -> bool:
    """Whether a failure reason says the verifier has no way to the address at all."""
    low = reason.lower()
    return any(text in low for text in NO_PATH)


def connected(reason: str) -> bool:
    """Whether a failed request got as far as a TCP connection (refusals and connect timeouts
    did not; neither did a request with no path)."""
    low = reason.lower()
    return not (no_path(reason) or "connection refused" in low or "(connect)" in low)
