"""The TMDB collection: auth, rate limit, retries, redaction, and the offline snapshot.

`collect(config, log)` lists `GET /movie/top_rated` pages, keeps the movies whose list `genre_ids`
meet `config.genre_ids` (Drama or Romance by default) before any details call, and fetches
`GET /movie/{id}` for each kept movie once. Everything goes through one pooled `requests.Session`,
a thread pool and one rate limiter shared by all threads. A collection is all or nothing: it returns
only when every page and every kept movie is in, or raises `TMDBError` with a one-line cause.

Without credentials the same collection code reads the bundled snapshot instead of the network.
`config` is anything with the fields of `TMDBResource` (lake_assets/defs/resources/tmdb.py).
"""

from __future__ import annotations

import gzip
import json
import logging
import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, quote_plus

import requests
from requests.adapters import HTTPAdapter

from lake_assets import SAMPLE_DATA
from lake_assets.lib.errors import LakeError

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.themoviedb.org/3"
# TMDB refuses pages above 500 whatever `total_pages` says.
MAX_PAGE = 500
SNAPSHOT_DIR = SAMPLE_DATA / "tmdb_snapshot"
SNAPSHOT_PAGES_FILE = "top_rated.pt-BR.json.gz"
SNAPSHOT_MOVIES_FILE = "movies.pt-BR.json.gz"
# Requests start at least 1/rate apart, stretched by this much, so that a few milliseconds of
# scheduling or network jitter cannot pack rate+1 requests into the server's one-second window.
RATE_SAFETY = 1.02
# A Retry-After longer than this is a ban, not back-pressure: waiting it out would only hang the run.
MAX_RETRY_AFTER_S = 60.0
# urllib3 logs full URLs (query string, so the v3 key) at DEBUG.
_URL_LOGGING_LOGGERS = ("urllib3.connectionpool", "urllib3.util.retry")


@dataclass
class TMDBCollection:
    """One complete collection: the `/movie/{id}` responses unchanged, each id once, sorted by id."""

    records: list[dict]
    stats: dict[str, int | float]
    source: str  # "api" or "offline-snapshot"


class TMDBError(LakeError):
    """A collection that cannot complete. The message is one line and never carries a credential.
    `allow_retries` is False when trying again cannot help (a rejected credential)."""

    def __init__(self, message: str, allow_retries: bool = True):
        super().__init__(message)
        self.allow_retries = allow_retries


def collect(config: Any, log: logging.Logger | None = None) -> TMDBCollection:
    """One collection with `config`'s settings: live with a credential, else the bundled snapshot."""
    log = log or logger
    if not (config.read_access_token or config.api_key):
        log.warning(
            "TMDB OFFLINE: neither TMDB_READ_ACCESS_TOKEN nor TMDB_API_KEY is set, so this run reads "
            f"the bundled snapshot in {SNAPSHOT_DIR} (pt-BR, a few hundred movies) instead of calling "
            f"{config.base_url}. Set one of them to collect live data."
        )
        return _collect(_SnapshotTransport(SNAPSHOT_DIR), config, log, source="offline-snapshot")
    with _HttpTransport(config) as transport, _redacting_url_logs(transport.redact):
        return _collect(transport, config, log, source="api")


# ---------------------------------------------------------------------------------------------------
# The collection: the same code over the network and over the snapshot.


class _NotFound(Exception):
    """A details 404: the movie was deleted or merged after being listed."""


class _PageOutOfRange(Exception):
    """The server refuses this page number (TMDB: 422 `{"errors": ["page must be ..."]}`)."""


class _Aborted(Exception):
    """Another part of the collection failed; this worker stops without another request."""


class _Counters:
    """Thread-safe counters that become the collection's stats."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = {"requests": 0, "requests_429": 0, "retries": 0}

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._values[name] = self._values.get(name, 0) + n

    def __getitem__(self, name: str) -> int:
        with self._lock:
            return self._values.get(name, 0)


class _Transport(Protocol):
    counters: _Counters
    abort: threading.Event

    def get_page(self, page: int) -> dict: ...

    def get_movie(self, movie_id: int) -> dict: ...


def _collect(transport: _Transport, config: Any, log, *, source: str) -> TMDBCollection:
    started = time.monotonic()
    wanted = set(config.genre_ids)
    counters = transport.counters
    seen: set[int] = set()
    records: dict[int, dict] = {}
    skipped = duplicates = 0

    try:
        first = transport.get_page(1)
    except _PageOutOfRange as refused:
        raise TMDBError(f"TMDB refused page 1 of top_rated ({refused})") from None
    pages_done = 1
    last_page = min(config.pages, MAX_PAGE, int(first.get("total_pages") or 1))
    log.info(
        f"TMDB ({source}): top_rated has {first.get('total_pages')} pages; collecting pages 1..{last_page} "
        f"({config.language}), keeping genres {sorted(wanted)}, at most {config.rate_limit_per_s:g} requests/s "
        f"over {config.max_connections} connections"
    )
    pool = ThreadPoolExecutor(max_workers=config.max_connections, thread_name_prefix="tmdb")
    pending: dict[Future, tuple[str, int]] = {}

    def take(page_body: dict) -> None:
        nonlocal duplicates
        for movie in page_body.get("results", []):
            movie_id = movie["id"]
            if movie_id in seen:
                duplicates += 1
                continue
            seen.add(movie_id)
            if wanted.intersection(movie.get("genre_ids") or ()):
                pending[pool.submit(transport.get_movie, movie_id)] = ("movie", movie_id)

    def stats() -> dict[str, int | float]:
        elapsed = time.monotonic() - started
        return {
            "requests": counters["requests"],
            "requests_429": counters["requests_429"],
            "retries": counters["retries"],
            "skipped_ids": skipped,
            "pages": pages_done,
            "listed_movies": len(seen),
            "duplicate_listings": duplicates,
            "kept_movies": len(records),
            "wall_time_s": round(elapsed, 3),
            "requests_per_s": round(counters["requests"] / elapsed, 2) if elapsed > 0 else 0.0,
        }

    def log_progress() -> None:
        now = stats()
        log.info(
            f"TMDB progress: pages {pages_done}/{last_page}, listed {len(seen)}, kept {len(records)}, "
            f"details pending {sum(kind == 'movie' for kind, _ in pending.values())}, "
            f"requests {now['requests']} ({now['requests_per_s']}/s), retries {now['retries']}, "
            f"429s {now['requests_429']}, skipped {skipped}"
        )

    try:
        take(first)
        for page in range(2, last_page + 1):
            pending[pool.submit(transport.get_page, page)] = ("page", page)
        next_progress = time.monotonic() + config.progress_every_s
        while pending:
            done, _ = wait(pending, timeout=max(0.0, next_progress - time.monotonic()), return_when=FIRST_COMPLETED)
            for future in done:
                kind, key = pending.pop(future)
                if kind == "page":
                    try:
                        body = future.result()
                    except _PageOutOfRange as refused:
                        if key <= last_page:
                            log.warning(f"TMDB refused page {key} ({refused}): paging stops at page {key - 1}")
                            last_page = key - 1
                            _cancel_pages_after(pending, last_page)
                        continue
                    if key <= last_page:
                        pages_done += 1
                        take(body)
                else:
                    try:
                        records[key] = future.result()
                    except _NotFound:
                        skipped += 1
            if time.monotonic() >= next_progress:
                log_progress()
                next_progress = time.monotonic() + config.progress_every_s
    except BaseException:
        transport.abort.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)

    final = stats()
    log.info(f"TMDB collection complete ({source}): " + ", ".join(f"{k}={v}" for k, v in final.items()))
    return TMDBCollection(records=[records[i] for i in sorted(records)], stats=final, source=source)


def _cancel_pages_after(pending: dict[Future, tuple[str, int]], last_page: int) -> None:
    for future, (kind, key) in list(pending.items()):
        if kind == "page" and key > last_page and future.cancel():
            del pending[future]


# ---------------------------------------------------------------------------------------------------
# Over the network


class _RateLimiter:
    """One gate shared by every thread: request starts are at least 1/rate apart, and a server's
    Retry-After holds everyone, not only the thread that was told."""

    def __init__(self, rate_per_s: float, abort: threading.Event) -> None:
        self._interval = RATE_SAFETY / rate_per_s
        self._abort = abort
        self._gate = threading.Lock()  # held while waiting: the threads queue behind it, no busy polling
        self._next = 0.0
        self._hold_until = 0.0

    def acquire(self) -> None:
        with self._gate:
            while True:
                if self._abort.is_set():
                    raise _Aborted
                now = time.monotonic()
                due = max(self._next, self._hold_until)
                if due <= now:
                    break
                if self._abort.wait(due - now):
                    raise _Aborted
            self._next = now + self._interval

    def hold(self, seconds: float) -> None:
        # A plain float store: atomic under the GIL, and must not wait behind the gate's sleeper.
        self._hold_until = max(self._hold_until, time.monotonic() + seconds)


class _HttpTransport:
    def __init__(self, config: Any) -> None:
        self.config = config
        self.counters = _Counters()
        self.abort = threading.Event()
        self._limiter = _RateLimiter(config.rate_limit_per_s, self.abort)
        self._base_url = config.base_url.rstrip("/")
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=config.max_connections, max_retries=0, pool_block=True)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._session.headers.update({"Accept": "application/json", "User-Agent": "lake_assets-tmdb-collector"})
        self._auth_params: dict[str, str] = {}
        if config.read_access_token:
            self._session.headers["Authorization"] = f"Bearer {config.read_access_token}"
            self._credential = "the read access token (TMDB_READ_ACCESS_TOKEN, Bearer header)"
        else:
            self._auth_params = {"api_key": config.api_key}
            self._credential = "the v3 API key (TMDB_API_KEY)"
        self._secrets = [s for s in (config.read_access_token, config.api_key) if s]

    def __enter__(self) -> _HttpTransport:
        return self

    def __exit__(self, *exc) -> None:
        self._session.close()

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
                text = text.replace(form, "***")
        return text

    def get_page(self, page: int) -> dict:
        return self._get("/movie/top_rated", {"page": page})

    def get_movie(self, movie_id: int) -> dict:
        return self._get(f"/movie/{movie_id}", {})

    def _get(self, path: str, params: dict) -> dict:
        config = self.config
        params = {**self._auth_params, "language": config.language, **params}
        what = f"GET {path}" + (f"?page={params['page']}" if "page" in params else "")
        for attempt in range(config.max_retries + 1):
            self._limiter.acquire()
            self.counters.add("requests")
            problem, retry_after = None, None
            try:
                response = self._session.get(self._base_url + path, params=params, timeout=config.request_timeout_s)
            except (requests.ConnectionError, requests.Timeout) as exc:
                # Connection errors and timeouts name the full URL: with an api_key, the key.
                problem = f"{type(exc).__name__}: {self.redact(str(exc))}"
            else:
                status = response.status_code
                if status == 200:
                    try:
                        return response.json()
                    except ValueError:
                        problem = "HTTP 200 with a body that is not JSON (truncated?)"
                elif status == 404 and path != "/movie/top_rated":
                    raise _NotFound(path)
                elif status == 401:
                    raise TMDBError(
                        f"TMDB at {self._base_url} rejected {self._credential} (HTTP 401: "
                        f"{self._summary(response)}): set a valid credential",
                        allow_retries=False,
                    )
                elif status in (400, 422) and "page" in params and _is_page_refusal(response):
                    raise _PageOutOfRange(self._summary(response))
                elif status == 429:
                    self.counters.add("requests_429")
                    retry_after = _retry_after_s(response)
                    if retry_after is not None:
                        self._limiter.hold(retry_after)
                    problem = f"HTTP 429: {self._summary(response)}"
                elif status >= 500:
                    problem = f"HTTP {status}: {self._summary(response)}"
                else:
                    raise TMDBError(f"{what} at {self._base_url} answered HTTP {status}: {self._summary(response)}")
            if attempt == config.max_retries:
                raise TMDBError(f"{what} at {self._base_url} failed after {attempt + 1} attempts; last: {problem}")
            self.counters.add("retries")
            if self.abort.wait(retry_after if retry_after is not None else self._backoff(attempt)):
                raise _Aborted
        raise AssertionError("unreachable")

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter: half fixed, half random, so retrying threads spread out."""
        ceiling = min(self.config.backoff_max_s, self.config.backoff_base_s * 2**attempt)
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def _summary(self, response: requests.Response) -> str:
        """The error body on one line: TMDB's status_message, its `errors` list, or the text."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and "status_message" in body:
            text = f"status_code {body.get('status_code')}: {body['status_message']}"
        elif isinstance(body, dict) and "errors" in body:
            text = "; ".join(map(str, body["errors"]))
        else:
            text = response.text
        return self.redact(" ".join(text.split()))[:200]


def _is_page_refusal(response: requests.Response) -> bool:
    """TMDB refuses a page number with 422 `{"errors": ["page must be ..."]}` or 400 `status_code` 22."""
    try:
        body = response.json()
    except ValueError:
        return False
    if not isinstance(body, dict):
        return False
    errors = body.get("errors")
    if isinstance(errors, list) and any("page" in str(e) for e in errors):
        return True
    return body.get("status_code") == 22


def _retry_after_s(response: requests.Response) -> float | None:
    """Retry-After in seconds (delta-seconds or an HTTP date), capped; None when absent or unreadable."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


class _RedactingFilter(logging.Filter):
    def __init__(self, redact) -> None:
        super().__init__()
        self._redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self._redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


@contextmanager
def _redacting_url_logs(redact) -> Iterator[None]:
    """While collecting, scrub credentials from the URL lines urllib3 logs at DEBUG."""
    scrub = _RedactingFilter(redact)
    for name in _URL_LOGGING_LOGGERS:
        logging.getLogger(name).addFilter(scrub)
    try:
        yield
    finally:
        for name in _URL_LOGGING_LOGGERS:
            logging.getLogger(name).removeFilter(scrub)


# ---------------------------------------------------------------------------------------------------
# Offline


class _SnapshotTransport:
    """Answers the same two calls from the bundled snapshot (recorded-shape top_rated pages and the
    details of every movie they list), so offline runs take the same filtering and dedupe path."""

    def __init__(self, directory: Path) -> None:
        self.counters = _Counters()
        self.abort = threading.Event()
        with gzip.open(directory / SNAPSHOT_PAGES_FILE, "rt", encoding="utf-8") as f:
            self._pages: list[dict] = json.load(f)
        with gzip.open(directory / SNAPSHOT_MOVIES_FILE, "rt", encoding="utf-8") as f:
            self._movies: dict[int, dict] = {movie["id"]: movie for movie in json.load(f)}

    def get_page(self, page: int) -> dict:
        self.counters.add("requests")
        if not 1 <= page <= len(self._pages):
            raise _PageOutOfRange(f"the snapshot has pages 1..{len(self._pages)}")
        return json.loads(json.dumps(self._pages[page - 1]))

    def get_movie(self, movie_id: int) -> dict:
        self.counters.add("requests")
        if movie_id not in self._movies:
            raise _NotFound(movie_id)
        return json.loads(json.dumps(self._movies[movie_id]))
