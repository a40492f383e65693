"""Jobs: model work in worker threads, events streamed to whoever listens.

The event loop never runs a model: a request becomes a ``Job`` in a bounded queue, a worker
thread runs it, and everything the work reports (progress, previews, tokens, the result)
becomes an event that each listener (a Server-Sent Events stream) receives in order, from
the first, however late it subscribes.

    jobs = JobQueue(workers=1, max_pending=16)
    job = jobs.submit(lambda job: job.emit("progress", {"done": 1}) or {"ok": 1})
    async for kind, data in jobs.listen(job):   # ... ("result", {"ok": 1}), ("done", {})
        ...
    job.cancel()          # the work sees it at its next emit (raises Cancelled there)

A full queue raises ``QueueFull`` (the app answers 429 with Retry-After); finished jobs are
forgotten after a while, so memory stays flat however many jobs a server runs.
"""

from __future__ import annotations

import asyncio
import collections
import queue
import secrets
import threading
import time
import traceback
from collections.abc import AsyncIterator, Callable
from typing import Any

from genlab.errors import GenlabError

KEEP_FINISHED = 256  # finished jobs kept for late listeners; older ones are forgotten
TERMINAL = ("result", "error", "cancelled")


class QueueFull(Exception):
    """Too many jobs waiting: come back after ``retry_after`` seconds."""

    def __init__(self, retry_after: int):
        super().__init__(f"the queue is full; retry in {retry_after} s")
        self.retry_after = retry_after


class Cancelled(Exception):
    """Raised inside the work when its job was cancelled."""


class Job:
    def __init__(self, fn: Callable[[Job], Any], label: str = ""):
        self.id = secrets.token_hex(8)
        self.fn, self.label = fn, label
        self.events: list[tuple[str, Any]] = []
        self.created = time.monotonic()
        self.started: float | None = None
        self.finished: float | None = None
        self.result: Any = None
        self.error: str | None = None
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._listeners: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = []
        self._done = threading.Event()

    # -- the worker's side --------------------------------------------------------------
    def emit(self, kind: str, data: Any) -> None:
        """Send one event to every listener (and keep it for late ones); raises Cancelled
        when the job was cancelled, so the work stops at its next report."""
        if self._cancel.is_set() and kind not in TERMINAL:
            raise Cancelled()
        with self._lock:
            self.events.append((kind, data))
            listeners = list(self._listeners)
        for loop, q in listeners:
            try:
                loop.call_soon_threadsafe(q.put_nowait, (kind, data))
            except RuntimeError:  # that listener's loop is closed
                pass

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check(self) -> None:
        if self._cancel.is_set():
            raise Cancelled()

    # -- anyone's side ------------------------------------------------------------------
    def cancel(self) -> bool:
        """Ask the work to stop; False when it had already finished."""
        if self._done.is_set():
            return False
        self._cancel.set()
        return True

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def _mark_done(self) -> None:
        self.finished = time.monotonic()
        with self._lock:
            self.events.append(("done", {}))
            listeners = list(self._listeners)
            self._listeners.clear()
        self._done.set()
        for loop, q in listeners:
            try:
                loop.call_soon_threadsafe(q.put_nowait, ("done", {}))
            except RuntimeError:
                pass


class JobQueue:
    """``workers`` threads run jobs in order; at most ``max_pending`` wait."""

    def __init__(self, workers: int = 1, max_pending: int = 16, job_seconds: float = 2.0):
        self.max_pending = max_pending
        self.job_seconds = job_seconds  # a guess for Retry-After, refined as jobs finish
        self._q: queue.Queue[Job | None] = queue.Queue()
        self._jobs: collections.OrderedDict[str, Job] = collections.OrderedDict()
        self._pending: list[Job] = []
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._worker_loop, name=f"genlab-worker-{i}", daemon=True)
            for i in range(workers)
        ]
        for t in self._threads:
            t.start()

    def submit(self, fn: Callable[[Job], Any], label: str = "") -> Job:
        with self._lock:
            if len(self._pending) >= self.max_pending:
                wait = self.job_seconds * len(self._pending) / max(len(self._threads), 1)
                raise QueueFull(max(1, round(wait)))
            job = Job(fn, label)
            self._pending.append(job)
            self._jobs[job.id] = job
            self._forget_finished()
        self._q.put(job)
        return job

    def position(self, job: Job) -> int:
        """Jobs ahead of ``job`` in the queue (0: running or next)."""
        with self._lock:
            return self._pending.index(job) if job in self._pending else 0

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def _forget_finished(self) -> None:
        done = [k for k, j in self._jobs.items() if j.done]
        for k in done[: max(0, len(done) - KEEP_FINISHED)]:
            del self._jobs[k]

    def _worker_loop(self) -> None:
        while True:
            job = self._q.get()
            if job is None:
                return
            with self._lock:
                if job in self._pending:
                    self._pending.remove(job)
            job.started = time.monotonic()
            try:
                job.check()
                job.emit("start", {})
                job.result = job.fn(job)
                job.emit("result", job.result)
            except Cancelled:
                job.emit("cancelled", {})
            except GenlabError as e:
                job.error = str(e)
                job.emit("error", {"message": str(e)})
            except Exception as e:  # a bug: say so, keep the server up
                traceback.print_exc()
                job.error = f"{type(e).__name__}: {e}"
                job.emit("error", {"message": f"internal error ({type(e).__name__}: {e})"})
            finally:
                took = time.monotonic() - job.started
                self.job_seconds = 0.8 * self.job_seconds + 0.2 * took
                job._mark_done()

    async def listen(self, job: Job) -> AsyncIterator[tuple[str, Any]]:
        """Every event of ``job`` from the first, ending with ("done", {})."""
        loop = asyncio.get_running_loop()
        q: asyncio.Queue = asyncio.Queue()
        with job._lock:
            past = list(job.events)
            finished = job._done.is_set()
            if not finished:
                job._listeners.append((loop, q))
        for ev in past:
            yield ev
        if finished:
            return
        try:
            while True:
                kind, data = await q.get()
                yield kind, data
                if kind == "done":
                    return
        finally:
            with job._lock:
                if (loop, q) in job._listeners:
                    job._listeners.remove((loop, q))

    async def result(self, job: Job) -> Any:
        """Wait for ``job`` without blocking the loop (or holding a thread); its result, or
        its error as a GenlabError."""
        async for _ in self.listen(job):
            pass
        if job.error is not None:
            raise GenlabError(job.error)
        if job.result is None:
            raise GenlabError("the job was cancelled")
        return job.result

    def close(self) -> None:
        for _ in self._threads:
            self._q.put(None)
