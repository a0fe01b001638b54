"""The one place HTTP clients are made and HTTP is spoken: timeouts, trust, bounded bodies.

Every API collector and probe goes through `Api`: no redirects are followed, every request is
bounded by settings.timeout and by its source's overall deadline, bodies are cut off at
MAX_BODY, and every failure becomes Unreachable(source, reason) with a reason a person can act
on. Reasons name the method and the URL without its query string (queries may carry secrets).
"""

from __future__ import annotations

import functools
import json
import logging
import re
import ssl
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx

from opsverify import redact
from opsverify.settings import Settings
from opsverify.verdict import Unreachable

MAX_BODY = 4 << 20  # bytes; a server streaming forever is cut off here
USER_AGENT = "opsverify (read-only drift gates)"
RATE_LIMIT_TRIES = 3  # a 429 is asked again at most twice, and only within the deadline
RETRY_AFTER_DEFAULT = 1.0  # seconds, when a 429 names no Retry-After
T = TypeVar("T")
R = TypeVar("R")


class _ScrubLog(logging.Filter):
    """Drops query strings from httpx's request lines and masks registered secrets."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, httpx.URL) for a in record.args):
            record.args = tuple(a.copy_with(query=None) if isinstance(a, httpx.URL) else a
                                for a in record.args)
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed record is logging's to report, not ours
            return True
        clean = redact.scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


# httpx logs every request URL at INFO (a query may hold an API key); httpcore logs headers at
# DEBUG. Logger filters do not apply to child loggers, hence each one by name.
for _name in ("httpx", "httpcore.connection", "httpcore.http11", "httpcore.http2",
              "httpcore.proxy", "httpcore.socks"):
    logging.getLogger(_name).addFilter(_ScrubLog())


class Deadline:
    """An overall time budget; each request gets min(settings.timeout, what is left)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


def tls_verify(settings: Settings) -> ssl.SSLContext | bool:
    """The TLS trust of this run: the CA bundle if set, else system trust; False if insecure."""
    if settings.insecure_tls:
        return False
    if settings.ca_bundle is None:
        return _context(None, 0)
    try:
        stamp = settings.ca_bundle.stat().st_mtime_ns
        return _context(str(settings.ca_bundle), stamp)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"CA bundle {settings.ca_bundle} is unusable: {_clean(exc)}") from None


@functools.lru_cache(maxsize=8)
def _context(cafile: str | None, stamp: int) -> ssl.SSLContext:
    # Loading the system trust store costs ~0.1 s of CPU: once per process, not per client.
    return ssl.create_default_context(cafile=cafile)


def make_client(settings: Settings, *, transport: httpx.BaseTransport | None = None
                ) -> httpx.Client:
    """An httpx client as every collector uses it; raises ValueError for an unusable CA bundle."""
    return httpx.Client(
        verify=tls_verify(settings) if transport is None else True, transport=transport,
        follow_redirects=False, timeout=httpx.Timeout(settings.timeout),
        trust_env=False,  # no proxies and no CA files from the environment: settings decide
        headers={"User-Agent": USER_AGENT},
        limits=httpx.Limits(max_connections=32, max_keepalive_connections=8))


@contextmanager
def client_for(source: str, settings: Settings, client: httpx.Client | None
               ) -> Iterator[httpx.Client]:
    """The injected client, or a fresh one closed afterwards; a bad CA bundle is Unreachable."""
    if client is not None:
        yield client
        return
    try:
        own = make_client(settings)
    except ValueError as exc:
        raise Unreachable(source, str(exc)) from None
    with own:
        yield own


@dataclass
class Reply:
    """One HTTP answer: status, headers, the (bounded) body and how long it took."""

    method: str
    url: str  # without query string
    status: int
    reason: str  # the reason phrase as sent (PVE puts its error message there)
    headers: httpx.Headers
    body: bytes
    elapsed_s: float
    tries: int = 1  # more than 1: earlier answers were 429 and their Retry-After was honoured

    @property
    def where(self) -> str:
        return f"{self.method} {self.url}"

    def json(self) -> Any:
        """The body as JSON; ValueError if it is not."""
        return decode_json(self.body)


def decode_json(body: bytes) -> Any:
    """JSON from bytes; ValueError (never anything else) for anything that is not JSON."""
    try:
        return json.loads(body)
    except RecursionError:
        raise ValueError("invalid JSON: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ValueError(f"invalid JSON: {exc}") from None


def api_message(body: bytes) -> str | None:
    """The error message an API put in its body (Cloudflare, Infisical, PVE, Prometheus)."""
    try:
        doc = decode_json(body)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    parts: list[str] = []
    errors = doc.get("errors")
    if isinstance(errors, list):
        for err in errors[:3]:
            if isinstance(err, dict) and err.get("message"):
                code = f" ({err['code']})" if isinstance(err.get("code"), (int, str)) else ""
                parts.append(f"{err['message']}{code}")
    for key in ("error", "message", "errorType"):
        value = doc.get(key)
        if isinstance(value, (str, int)) and str(value) and str(value) not in parts:
            parts.append(str(value))
    return short("; ".join(parts)) if parts else None


def short(text: str, limit: int = 200) -> str:
    """One line, scrubbed of secrets, at most `limit` characters."""
    # Scrubbed before the whitespace is collapsed: an echoed secret holding two spaces or a
    # tab must still match; then control characters are made visible.
    text = redact.visible(" ".join(redact.scrub(str(text)).split()))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _clean(exc: BaseException) -> str:
    """An exception as a reason: no errno or OpenSSL prefixes, no source locations."""
    text = str(exc) or exc.__class__.__name__
    text = re.sub(r"\[(Errno \d+|SSL: [A-Z_]+)\] ", "", text)
    text = re.sub(r" \(_ssl\.c:\d+\)", "", text)
    return short(text.lower() if text.startswith("Connection refused") else text)


def _plain_url(url: httpx.URL) -> str:
    return str(url.copy_with(query=None, fragment=None))


class Api:
    """HTTP for one source: its client, its deadline, every failure as Unreachable(source, …)."""

    def __init__(self, source: str, client: httpx.Client, settings: Settings,
                 deadline: Deadline | None = None, *, max_body: int = MAX_BODY):
        self.source = source
        self.client = client
        self.timeout = settings.timeout
        self.deadline = deadline or Deadline(settings.timeout)
        self.max_body = max_body

    def fail(self, reason: str) -> Unreachable:
        return Unreachable(self.source, short(reason, 400))

    def request(self, method: str, url: str, *, params: Mapping[str, Any] | None = None,
                headers: Mapping[str, str] | None = None, json_body: Any = None,
                read_body: bool = True) -> Reply:
        """Send one request; any status is returned, transport failures raise Unreachable.

        A 429 is sent again after its Retry-After, at most RATE_LIMIT_TRIES times in all and
        only while the wait fits in the source's deadline: one rate-limited answer must not
        make the whole source UNREACHABLE, and no wait may outlast the run's time budget.
        """
        for tries in range(1, RATE_LIMIT_TRIES + 1):
            reply = self._request(method, url, params=params, headers=headers,
                                  json_body=json_body, read_body=read_body)
            reply.tries = tries
            wait = retry_after(reply.headers)
            wait = RETRY_AFTER_DEFAULT if wait is None else wait
            # The wait and one more answer must both fit in what is left of the deadline.
            if (reply.status != 429 or tries == RATE_LIMIT_TRIES
                    or wait + RETRY_AFTER_DEFAULT >= self.deadline.left()):
                return reply
            time.sleep(wait)
        raise AssertionError("unreachable")  # the loop always returns

    def _request(self, method: str, url: str, *, params: Mapping[str, Any] | None,
                 headers: Mapping[str, str] | None, json_body: Any, read_body: bool) -> Reply:
        full = httpx.URL(url, params=params) if params else httpx.URL(url)
        where = f"{method} {_plain_url(full)}"
        budget = min(self.timeout, self.deadline.left())
        if budget <= 0:
            raise self.fail(f"{where}: not sent, the {self.deadline.seconds:g} s deadline of "
                            f"{self.source} has passed")
        start = time.monotonic()
        try:
            with self.client.stream(method, full, headers=headers, json=json_body,
                                    timeout=httpx.Timeout(budget),
                                    follow_redirects=False) as response:
                body = self._read(response, where) if read_body else b""
        except httpx.TimeoutException as exc:
            kind = {httpx.ConnectTimeout: "connect", httpx.ReadTimeout: "no answer",
                    httpx.WriteTimeout: "write", httpx.PoolTimeout: "pool"}.get(type(exc), "")
            raise self.fail(f"{where}: timed out after {budget:.2g} s ({kind})") from None
        except (httpx.HTTPError, httpx.InvalidURL, ssl.SSLError, OSError, ValueError) as exc:
            # ValueError: a header value httpx cannot encode (UnicodeEncodeError) is this
            # request's failure, never the whole source's
            raise self.fail(f"{where}: {_clean(exc)}") from None
        return Reply(method, _plain_url(full), response.status_code, response.reason_phrase,
                     response.headers, body, time.monotonic() - start)

    def _read(self, response: httpx.Response, where: str) -> bytes:
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > self.max_body:
            raise self.fail(f"{where}: response of {int(length)} bytes exceeds the "
                            f"{self.max_body} byte limit")
        chunks, size = [], 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > self.max_body:
                raise self.fail(f"{where}: response exceeds the {self.max_body} byte limit")
            if self.deadline.left() < 0:  # a server trickling bytes forever
                raise self.fail(f"{where}: timed out after {self.deadline.seconds:g} s "
                                "(body still arriving)")
            chunks.append(chunk)
        return b"".join(chunks)

    def get_json(self, url: str, *, params: Mapping[str, Any] | None = None,
                 headers: Mapping[str, str] | None = None, method: str = "GET",
                 json_body: Any = None, accept: Iterable[int] = ()) -> tuple[int, Any]:
        """(status, JSON) of a 2xx answer (or a status in `accept`); anything else Unreachable."""
        headers = {"Accept": "application/json", **(headers or {})}
        reply = self.request(method, url, params=params, headers=headers, json_body=json_body)
        if not (200 <= reply.status < 300 or reply.status in set(accept)):
            raise self.fail(status_reason(reply))
        try:
            return reply.status, reply.json()
        except ValueError as exc:
            raise self.fail(f"{reply.where}: HTTP {reply.status} but {exc}") from None


def retry_after(headers: httpx.Headers) -> float | None:
    """Seconds a Retry-After header asks to wait (delay-seconds or HTTP-date), else None."""
    value = (headers.get("retry-after") or "").strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time()) if when.tzinfo else None


def status_reason(reply: Reply) -> str:
    """`GET url: HTTP 403 Forbidden (Authentication error (10000))`; a 429 says rate limited."""
    message = api_message(reply.body)
    if reply.status == 429:
        wait = retry_after(reply.headers)
        asked = f", Retry-After {wait:g} s" if wait is not None else ""
        return (f"{reply.where}: rate limited (HTTP 429 after {reply.tries} "
                f"{'try' if reply.tries == 1 else 'tries'}{asked}"
                + (f": {message}" if message else "") + ")")
    phrase = short(reply.reason, 120) or httpx.codes.get_reason_phrase(reply.status)
    if message and phrase.rstrip(".") in message:
        phrase = httpx.codes.get_reason_phrase(reply.status)
    return f"{reply.where}: HTTP {reply.status} {phrase}".rstrip() + (
        f" ({message})" if message else "")


def parsed(api: Api, where: str, parse: Callable[..., T], *args: Any) -> T:
    """parse(*args), with a parser's ValueError turned into Unreachable naming the request."""
    try:
        return parse(*args)
    except ValueError as exc:
        raise api.fail(f"{where}: unexpected response: {short(str(exc))}") from None


def concurrently(fn: Callable[[T], R], items: Iterable[T], workers: int = 16) -> list[R]:
    """fn over items in threads, results in order; each fn must bound its own time."""
    items = list(items)
    if len(items) <= 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items)),
                            thread_name_prefix="api") as pool:
        return list(pool.map(fn, items))


# --- tolerant readers shared by the response parsers ---------------------------------------
# Parsers promise one exception for any garbage, ValueError, so a wrong type is one too.


def as_dict(value: Any, what: str) -> dict[str, Any]:
    """value if it is a JSON object, else ValueError naming what was expected."""
    if not isinstance(value, dict):
        raise ValueError(f"{what} is not an object")  # noqa: TRY004
    return value


def as_list(value: Any, what: str) -> list[Any]:
    """value if it is a JSON array, else ValueError naming what was expected."""
    if not isinstance(value, list):
        raise ValueError(f"{what} is not a list")  # noqa: TRY004
    return value


def opt_str(value: Any) -> str | None:
    """A string field; numbers are rendered, anything else is absent."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def opt_int(value: Any) -> int | None:
    """An integer that may arrive as a number, a numeric string or a boolean; else absent."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d{1,18}\s*", value):
        return int(value)
    return None


def opt_bool(value: Any) -> bool | None:
    """A boolean that may arrive as true/1/"1"/"true"; else absent."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "0", "false"):
        return value.strip().lower() in ("1", "true")
    return None
