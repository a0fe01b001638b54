"""GET a URL from inside the twin's network until it answers as wanted; print what it said.

    ops lab exec -- python tests/serve/inside_get.py URL --status 200 [--timeout S]
    ops lab exec -- python tests/serve/inside_get.py PROM_URL --query 'up{job="x"}' --value 1

Run only inside the twin (`ops lab exec`): the addresses it asks exist nowhere else. Prints
{"status", "body", "seconds"} as JSON; exit 1 if the wanted answer never came.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(url: str) -> tuple[int, str]:
    try:
        with OPENER.open(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return 0, str(e)


def prom_value(body: str) -> str | None:
    try:
        result = json.loads(body)["data"]["result"]
        return result[0]["value"][1] if result else None
    except (ValueError, KeyError, IndexError):
        return None


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("--status", type=int, default=None)
    p.add_argument("--query", default=None)
    p.add_argument("--value", default=None)
    p.add_argument("--timeout", type=float, default=90)
    a = p.parse_args()
    url = a.url + ("/api/v1/query?" + urllib.parse.urlencode({"query": a.query})
                   if a.query else "")
    t0 = time.monotonic()
    while True:
        status, body = get(url)
        done = (a.status is None or status == a.status) and \
            (a.query is None or prom_value(body) == a.value)
        if done or time.monotonic() - t0 > a.timeout:
            print(json.dumps({"status": status, "body": body,
                              "seconds": round(time.monotonic() - t0, 2)}))
            return 0 if done else 1
        time.sleep(0.2)


if __name__ == "__main__":
    sys.exit(main())
