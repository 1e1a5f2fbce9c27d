"""The intake's Starlette app: authenticated writes in, 202 at once, the work in one background thread.

POST /alerts (Alertmanager v4) and POST /events (an agent's event) are read as a stream up to the body
limit, authenticated (auth.py), validated (schema.py), deduplicated, spooled (spool.py) and queued; the
worker thread calls handler(report) one report at a time, in order. GET /health and GET /metrics are open.

create_app(config, handler) builds it; the Intake object behind it is app.state.intake.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import math
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..memory import MemoryStore, atomic_write, format_time, one_line, utcnow
from ..redact import Redactor
from ..reports import Report
from .auth import SEEN_TTL_S, Authenticator, AuthResult, SeenIds, Verdict
from .deadman import DeadMan, heartbeat_age
from .schema import PARSERS, FieldError, Parsed
from .spool import SPOOL_DIR, Entry, Segment, Spool, report_to_json

log = logging.getLogger("opsrunner.intake")

Handler = Callable[[Report], None]

DEFAULT_QUEUE_SIZE = 1000
DEFAULT_BODY_LIMIT = 1024 * 1024
DEFAULT_HEARTBEAT_INTERVAL = 1800.0
# An Alertmanager alert (fingerprint, status, startsAt) seen within this window is a retry or a repeat.
DEFAULT_DEDUP_WINDOW = 3600.0
DEDUP_MAX = 100_000
# A commit is made this many turns of the event loop after its first request: the requests whose bytes
# arrive meanwhile run in those turns and join it. Measured (benchmarks/intake.py, 16 clients), against one
# turn: 2 turns about 5% more alerts/s, 3 about 10% (commits about twice as large), 4 no more; the cost is
# two more turns, microseconds when the server is idle.
COMMIT_TURNS = 3
# After each batch the worker lets reports gather this long: one wake-up per batch rather than one per
# commit, each of which takes the GIL from the event loop (as a Kafka producer's linger.ms batches sends).
WORKER_LINGER_S = 0.005
FAILED_FILE = "intake/failed.jsonl"
SEEN_FILE = "intake/.seen-ids.json"
RECENT_FILE = "intake/.recent-alerts.json"
RECENT_SAVE_S = 30.0


@dataclass
class IntakeConfig:
    memory_dir: Path
    token: str | None = None  # the bearer token, when bearer authentication is on
    signing_secret: str | None = None  # the Standard Webhooks secret (whsec_<base64>), when signatures are on
    queue_size: int = DEFAULT_QUEUE_SIZE  # reports waiting for the handler; more is 429
    body_limit: int = DEFAULT_BODY_LIMIT  # bytes; more is 413
    heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL  # the dead-man's switch fires after 2 of them
    deadman: bool = True
    dedup_window: float = DEFAULT_DEDUP_WINDOW
    seen_ttl: float = SEEN_TTL_S


class RequestError(Exception):
    """An answer other than 202, with its JSON body."""

    def __init__(self, status: int, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.status = status
        self.body = {"error": error, **extra}


# -- the queue and its worker --------------------------------------------------------------------------


@dataclass
class Item:
    report: Report
    segment: Segment  # the spool segment that holds it


class WorkQueue:
    """A bounded FIFO of reports shared by the event loop (producer) and the worker thread. A request
    reserves its places before it is logged in the spool, so a full queue is known (429) before the write."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.items: collections.deque[Item] = collections.deque()
        self.cond = threading.Condition()
        self.closed = False
        self.reserved = 0  # places of reports being written to the spool (event loop only)
        self.in_hand = 0  # taken by the worker, not yet handled: they still hold their places

    def depth(self) -> int:
        return len(self.items) + self.in_hand + self.reserved

    def room(self) -> int:
        return self.capacity - self.depth()

    def reserve(self, count: int) -> None:
        self.reserved += count

    def release(self, count: int) -> None:
        self.reserved -= count

    def put_all(self, items: list[Item], reserved: int = 0) -> None:
        with self.cond:
            self.items.extend(items)
            self.reserved -= reserved
            self.cond.notify()

    def take(self) -> list[Item]:
        """Every item queued now (waiting for one), or [] once closed (what is queued stays spooled).
        Taking them together keeps the worker off the lock, and the GIL, between reports."""
        with self.cond:
            while not self.items and not self.closed:
                self.cond.wait()
            if self.closed:
                return []
            taken = list(self.items)
            self.in_hand = len(taken)  # before the clear: a reader in between over-counts, never under
            self.items.clear()
            return taken

    def done_one(self) -> None:
        self.in_hand -= 1

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()


class Committer:
    """Group commit of the spool on the event loop: the requests of COMMIT_TURNS turns of the loop are logged
    together, one write and one fdatasync; then their reports go to the queue together, in commit order, and
    the requests answer. Like Redis's `appendfsync always`, the fdatasync runs on the loop itself: the
    requests in the commit wait for it anyway, and a thread or a helper process for it measured no faster (a
    thread fights the loop for the GIL at every system call). The worker wakes once per commit at most and
    never waits for a write."""

    def __init__(self, spool: Spool, lock: threading.Lock, queue: WorkQueue) -> None:
        self.spool = spool
        self.lock = lock
        self.queue = queue
        self.pending: list[tuple[Entry, list[Report], asyncio.Future[None]]] = []

    async def store(self, entry: Entry, reports: list[Report]) -> None:
        """Returns once the request (whose reports' queue places are reserved) is on disk and its reports
        queued; raises OSError when it cannot be written, the places released."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        if not self.pending:
            loop.call_soon(self.commit)
        self.pending.append((entry, reports, future))
        await future  # a request cancelled meanwhile cancels only its own future: the commit goes on

    def commit(self, turns: int = 1) -> None:
        if turns < COMMIT_TURNS:  # let the requests whose bytes came in meanwhile join (see COMMIT_TURNS)
            asyncio.get_running_loop().call_soon(self.commit, turns + 1)
            return
        group, self.pending = self.pending, []
        reports = [report for _, batch, _ in group for report in batch]
        try:
            with self.lock:  # against the dead-man's thread
                segment = self.spool.append([entry for entry, _, _ in group], len(reports))
        except Exception as exc:  # every waiter learns it (OSError: 503), none waits forever
            self.queue.release(len(reports))
            for _, _, future in group:
                if not future.done():
                    future.set_exception(exc)
            return
        self.queue.put_all([Item(report, segment) for report in reports], reserved=len(reports))
        for _, _, future in group:
            if not future.done():
                future.set_result(None)


class RecentKeys:
    """Keys seen within a time window (Alertmanager's retries and repeats), bounded in number. Kept in a
    file across restarts: saved every RECENT_SAVE_S and at a graceful stop, as Alertmanager snapshots its
    own notification log; a crash forgets at most the last interval's keys (their repeats then join their
    incidents as repeats: nothing is lost, a page is not sent twice)."""

    def __init__(self, window: float, limit: int = DEDUP_MAX) -> None:
        self.window = window
        self.limit = limit
        self.keys: collections.OrderedDict[str, float] = collections.OrderedDict()  # key -> wall time

    def __contains__(self, key: str) -> bool:
        seen = self.keys.get(key)
        return seen is not None and seen >= time.time() - self.window

    def discard(self, keys: list[str]) -> None:
        for key in keys:
            self.keys.pop(key, None)

    def add(self, key: str, when: float | None = None) -> None:
        now = when or time.time()
        self.keys[key] = now
        self.keys.move_to_end(key)
        if len(self.keys) > self.limit:
            self.keys.popitem(last=False)
        if len(self.keys) % 256 == 0:  # expired keys answer "not seen" anyway: sweep them now and then
            self.expire(now)

    def expire(self, now: float) -> None:
        while self.keys and next(iter(self.keys.values())) < now - self.window:
            self.keys.popitem(last=False)

    def snapshot(self) -> list[tuple[str, float]]:
        self.expire(time.time())
        return list(self.keys.items())

    @staticmethod
    def save(path: Path, snapshot: list[tuple[str, float]]) -> None:
        atomic_write(path, json.dumps(snapshot, separators=(",", ":")), mode=0o600)

    def load(self, path: Path) -> None:
        """The keys saved last time, those still inside the window; a missing or torn file is no keys."""
        try:
            saved = json.loads(path.read_text())
        except (OSError, ValueError):
            return
        floor = time.time() - self.window
        if isinstance(saved, list):
            valid = [item for item in saved if isinstance(item, list) and len(item) == 2]
            kept = [(float(w), str(k)) for k, w in valid if isinstance(w, int | float) and w >= floor]
            for when, key in sorted(kept):  # oldest first: the order add() evicts in
                self.add(key, when)


def nan_if_none(value: float | None) -> float:
    return math.nan if value is None else value  # no heartbeat ever finished


class Metrics:
    def __init__(self, intake: Intake) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "opsrunner_intake_requests", "Requests by route and code", ["route", "code"], registry=r
        )
        self.reports = Counter(
            "opsrunner_intake_reports", "Reports received, by outcome", ["outcome"], registry=r
        )
        self.handled = Counter("opsrunner_intake_reports_handled", "Reports the handler finished", registry=r)
        self.failures = Counter(
            "opsrunner_intake_handler_failures", "Reports whose handler raised", registry=r
        )
        Gauge("opsrunner_intake_queue_depth", "Reports waiting for the handler", registry=r).set_function(
            intake.queue.depth
        )
        Gauge(
            "opsrunner_intake_spooled_reports", "Reports in the spool, not yet handled", registry=r
        ).set_function(intake.spooled_reports)
        Gauge(
            "opsrunner_intake_heartbeat_age_seconds", "Seconds since the last heartbeat finished", registry=r
        ).set_function(lambda: nan_if_none(intake.heartbeat_age()))
        self.accepted = self.reports.labels("accepted")
        self.duplicates = self.reports.labels("duplicate")
        self.children: dict[tuple[str, int], Any] = {}

    def count(self, route: str, code: int) -> None:
        """Count a request; the labelled child is looked up once per route and code (labels() is slow)."""
        child = self.children.get((route, code))
        if child is None:
            child = self.children[(route, code)] = self.requests.labels(route, str(code))
        child.inc()


# -- the intake ----------------------------------------------------------------------------------------


@dataclass
class Intake:
    """Everything behind the app: auth, spool, queue, worker, dead-man's switch, metrics."""

    config: IntakeConfig
    handler: Handler
    store: MemoryStore = field(init=False)
    started: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        self.store = MemoryStore(self.config.memory_dir)
        # First the checks that may refuse the settings, then the folders: a refusal leaves nothing behind.
        self.auth = Authenticator(
            self.config.token,
            self.config.signing_secret,
            SeenIds(self.store.path(SEEN_FILE), self.config.seen_ttl),
        )
        self.store.path("intake").mkdir(parents=True, exist_ok=True, mode=0o700)
        self.spool = Spool(self.store.path(SPOOL_DIR))
        self.redactor = Redactor([s for s in (self.config.token, self.config.signing_secret) if s])
        self.queue = WorkQueue(self.config.queue_size)
        self.recent = RecentKeys(self.config.dedup_window)
        self.recent.load(self.store.path(RECENT_FILE))
        self.metrics = Metrics(self)
        self.worker = threading.Thread(target=self.work, name="intake-worker", daemon=True)
        self.spool_lock = threading.Lock()
        self.committer = Committer(self.spool, self.spool_lock, self.queue)
        self.deadman = DeadMan(
            self.store,
            self.config.heartbeat_interval,
            emit=self.submit,
            started=self.started,
        )

    # lifecycle

    def start(self) -> None:
        """Replay the spool (in arrival order, before any new request), then start the worker and watcher."""
        replayed = 0
        for segment, reports in self.spool.load():
            self.enqueue(reports, segment)
            replayed += len(reports)
        if replayed:
            log.info("intake: replaying %d spooled report(s)", replayed)
        self.worker.start()
        if self.config.deadman:
            self.deadman.start()

    def stop(self) -> None:
        """Stop taking work: the report in hand finishes; what is still queued stays spooled."""
        self.deadman.stop()
        self.queue.close()
        if self.worker.is_alive():
            log.info("intake: waiting for the report in hand")
            self.worker.join()
        with self.spool_lock:
            self.spool.save_progress()
            self.spool.close()
        self.save_recent(self.recent.snapshot())

    def save_recent(self, snapshot: list[tuple[str, float]]) -> None:
        try:
            RecentKeys.save(self.store.path(RECENT_FILE), snapshot)
        except OSError as exc:  # dedup across a restart suffers, nothing else
            log.error("intake: cannot save the recent alert keys: %s", exc)

    async def keep_saving_recent(self) -> None:
        """Save the dedup keys every RECENT_SAVE_S: the copy on the loop, the write in a thread."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(RECENT_SAVE_S)
            await loop.run_in_executor(None, self.save_recent, self.recent.snapshot())

    # state

    def spooled_reports(self) -> int:
        return self.spool.pending()

    def heartbeat_age(self) -> float | None:
        return heartbeat_age(self.store)

    # accepting

    def enqueue(self, reports: list[Report], segment: Segment) -> None:
        """Queue reports that `segment` holds (replayed at start, or written by the dead-man's switch)."""
        self.queue.put_all([Item(report, segment) for report in reports])

    def submit(self, report: Report) -> None:
        """Internal reports (the dead-man's switch): spooled and queued past the queue's bound."""
        with self.spool_lock:
            self.enqueue([report], self.spool.append([Entry.of_report(report)], 1))

    async def accept(self, kind: str, body: bytes, parsed: Parsed, auth: AuthResult) -> dict[str, int]:
        """Accept a request's new reports, all or none: spooled before this returns (and so before the 202).

        The checks and the reservations (queue places, dedup keys, the webhook id) are one step on the event
        loop; then the request is logged with the others of its turn of the loop; a failed write undoes
        the reservations."""
        keep, keys = self.reserve(parsed, auth)
        fresh = [parsed.reports[n] for n in keep]
        duplicates = len(parsed.reports) - len(fresh)
        try:
            if fresh:
                entry = Entry(kind, body, parsed.received, None if duplicates == 0 else keep)
                await self.committer.store(entry, fresh)
        except Exception:
            self.recent.discard(keys)
            if auth.msg_id:
                self.auth.seen.forget(auth.msg_id)
            raise
        if auth.msg_id:
            try:
                self.auth.seen.save()
            except OSError as exc:  # the reports are safe in the spool; only replay protection suffers
                log.error("intake: cannot record webhook id: %s", exc)
        self.metrics.accepted.inc(len(fresh))
        if duplicates:
            self.metrics.duplicates.inc(duplicates)
        return {"accepted": len(fresh), "duplicates": duplicates}

    def reserve(self, parsed: Parsed, auth: AuthResult) -> tuple[list[int], list[str]]:
        """The checks and reservations of accept(), without awaiting: one step for concurrent requests.
        Returns the indices of the new reports and the dedup keys reserved."""
        keep: list[int] = []
        keys: list[str] = []
        for n, key in enumerate(parsed.dedup_keys):
            if key is not None and (key in self.recent or key in keys):
                continue
            keep.append(n)
            if key is not None:
                keys.append(key)
        if len(keep) > self.config.queue_size:
            raise RequestError(
                413, f"{len(keep)} reports in one request: the queue holds {self.config.queue_size}"
            )
        if keep and self.queue.room() < len(keep):
            raise RequestError(429, "the queue is full: retry later", queue_depth=self.queue.depth())
        self.queue.reserve(len(keep))
        for key in keys:
            self.recent.add(key)
        if auth.msg_id:
            self.auth.seen.add(auth.msg_id, auth.signature)
        return keep, keys

    # the worker

    def work(self) -> None:
        while items := self.queue.take():
            for item in items:
                if self.queue.closed:
                    return  # stopping: the report in hand is done, the rest stays spooled
                self.work_on(item)
                self.queue.done_one()
            self.spool.save_progress()
            time.sleep(WORKER_LINGER_S)

    def work_on(self, item: Item) -> None:
        self.handle(item.report)
        self.spool.handled(item.segment)

    def handle(self, report: Report) -> None:
        try:
            self.handler(report)
        except Exception as exc:  # one bad report must not stop the others
            error = self.redactor.redact_text(one_line(f"{type(exc).__name__}: {exc}", 1000))
            log.error("intake: handler failed on %s: %s", self.redactor.redact_text(report.describe()), error)
            self.metrics.failures.inc()
            self.record_failure(report, error)
        finally:
            self.metrics.handled.inc()

    def record_failure(self, report: Report, error: str) -> None:
        line = {"time": format_time(utcnow()), "error": error, "report": report_to_json(report)}
        try:
            self.store.append(FAILED_FILE, self.redactor.redact_text(json.dumps(line, sort_keys=True)) + "\n")
        except OSError as exc:
            log.error("intake: cannot record the failure in %s: %s", FAILED_FILE, exc)


# -- HTTP ----------------------------------------------------------------------------------------------


async def read_body(request: Request, limit: int) -> bytes:
    """The body, read as a stream and abandoned at the limit (413): a huge request is never read whole."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise RequestError(400, "bad Content-Length", field="content-length")
        if int(declared) > limit:
            raise RequestError(413, f"the body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def write_endpoint(intake: Intake, kind: str) -> Callable[[Request], Any]:
    parse = PARSERS[kind]

    async def endpoint(request: Request) -> Response:
        route = request.scope["path"]  # not request.url: building the URL costs more than the route
        try:
            body = await read_body(request, intake.config.body_limit)
            auth = intake.auth.check(request.headers, body)  # case-insensitive
            if auth.verdict is Verdict.REJECT:
                raise RequestError(401, auth.reason)
            if auth.verdict is Verdict.DUPLICATE:
                response = JSONResponse({"duplicate": True, "accepted": 0}, status_code=200)
            else:
                answer = await intake.accept(kind, body, parse(body, None), auth)
                response = JSONResponse(answer, status_code=202)
        except FieldError as exc:
            response = JSONResponse({"error": exc.message, "field": exc.field}, status_code=exc.status)
        except RequestError as exc:
            response = JSONResponse(exc.body, status_code=exc.status)
        except OSError as exc:  # the spool cannot be written: nothing was accepted
            log.error("intake: %s", exc)
            response = JSONResponse({"error": "the intake cannot store reports now"}, status_code=503)
        if response.status_code >= 400:
            log.info("intake: %s %s -> %d", request.method, route, response.status_code)
        intake.metrics.count(route, response.status_code)
        return response

    return endpoint


def create_app(config: IntakeConfig, handler: Handler) -> Starlette:
    """The intake app. Raises settings.BadInput when no authentication is configured."""
    intake = Intake(config, handler)

    async def health(request: Request) -> Response:
        age = intake.heartbeat_age()
        alive = intake.worker.is_alive()
        body = {
            "status": "ok" if alive else "worker stopped",
            "queue_depth": intake.queue.depth(),
            "queue_size": config.queue_size,
            "spooled_reports": intake.spooled_reports(),
            "heartbeat_age_s": None if age is None else round(age, 1),
            "deadman_fired": intake.deadman.fired,
        }
        intake.metrics.count("/health", 200 if alive else 503)
        return JSONResponse(body, status_code=200 if alive else 503)

    async def metrics(request: Request) -> Response:
        intake.metrics.count("/metrics", 200)
        return Response(generate_latest(intake.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        intake.start()
        saver = asyncio.ensure_future(intake.keep_saving_recent())
        try:
            yield
        finally:
            saver.cancel()
            intake.stop()

    app = Starlette(
        routes=[
            Route("/alerts", write_endpoint(intake, "alerts"), methods=["POST"]),
            Route("/events", write_endpoint(intake, "events"), methods=["POST"]),
            Route("/health", health, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.intake = intake
    return app
