"""The outbox dispatcher: delivers stored callbacks to core, each job's in order.

Callbacks are rows of the store, written before anything is sent; the dispatcher only reads
and settles them. On start it finds what a previous process left undelivered. Jobs are
delivered side by side (up to ``concurrency``), so one job whose callback core keeps
refusing with 5xx does not hold the others back; within a job, one callback at a time.
Several processes may share a store (PostgreSQL): a job's callbacks are then delivered by
whichever holds the store's ``delivering`` claim on it, so each is sent by one process.
"""

from __future__ import annotations

import asyncio
import logging

from app.callbacks import CallbackClient, DeliveryStopped
from app.metrics import Metrics
from app.service.jobs import job_logger
from app.service.store import JobStore

logger = logging.getLogger(__name__)


class OutboxDispatcher:
    """Delivers the outbox of a store through a ``CallbackClient``.

    Args:
        store: Holds the callbacks.
        client: Sends them, retrying transient failures.
        metrics: Counters to update.
        concurrency: Jobs delivered at once.
        poll_interval: Seconds between looks at the store besides ``notify`` wake-ups.
    """

    def __init__(
        self,
        store: JobStore,
        client: CallbackClient,
        metrics: Metrics,
        *,
        concurrency: int = 4,
        poll_interval: float = 5.0,
    ) -> None:
        self._store = store
        self._client = client
        self._metrics = metrics
        self._slots = asyncio.Semaphore(concurrency)
        self._poll_interval = poll_interval
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._main: asyncio.Task[None] | None = None
        self._jobs: dict[str, asyncio.Task[None]] = {}

    def start(self) -> None:
        """Start delivering, beginning with what is already in the outbox."""
        self._stopping.clear()
        self._main = asyncio.create_task(self._run(), name="outbox")

    def notify(self, job_id: str | None = None) -> None:
        """Say that a callback was stored (for ``job_id``); delivery starts at once."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop delivering; what is not delivered stays in the outbox for the next start.

        A callback on the wire is let finish and is settled (at most the client's timeout):
        cut off, core might have taken it without our knowing, and the next start would send
        it again. Waits between tries end at once.
        """
        self._stopping.set()
        if self._main is not None:
            self._main.cancel()
        tasks = [t for t in (self._main, *self._jobs.values()) if t is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
        self._jobs.clear()
        self._main = None

    async def _run(self) -> None:
        # Ends on the stop flag, not only on the cancellation: Python 3.11's wait_for swallows
        # a cancellation that arrives as the wake-up does (CPython gh-86296), and the loop
        # would go on for ever.
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                job_ids = await self._store.jobs_with_pending_events()
            except Exception:
                logger.exception("cannot read the outbox; trying again")
                job_ids = []
            for job_id in job_ids:
                task = self._jobs.get(job_id)
                if task is None or task.done():
                    task = asyncio.create_task(self._drain(job_id), name=f"outbox-{job_id}")
                    task.add_done_callback(self._drained)
                    self._jobs[job_id] = task
            try:
                await asyncio.wait_for(self._wake.wait(), self._poll_interval)
            except TimeoutError:
                continue

    async def _drain(self, job_id: str) -> None:
        """Deliver a job's pending callbacks, oldest first, until none is left."""
        log = job_logger(logger, job_id)
        async with self._slots, self._store.delivering(job_id) as ours:
            if not ours:  # another process is delivering them, in order
                return
            while not self._stopping.is_set():
                event = await self._store.next_pending_event(job_id)
                if event is None:
                    return
                try:
                    delivery = await self._client.deliver(event, self._stopping)
                except DeliveryStopped:
                    return
                await self._store.settle_event(
                    event.id, delivery.state, delivery.attempts, delivery.error
                )
                self._metrics.callbacks.labels(delivery.state.value).inc()
                if delivery.attempts > 1:
                    self._metrics.callback_retries.inc(delivery.attempts - 1)
                log.debug("callback %s: %s", event.event_id, delivery.state.value)

    def _drained(self, task: asyncio.Task[None]) -> None:
        job_id = task.get_name().removeprefix("outbox-")
        if self._jobs.get(job_id) is task:
            del self._jobs[job_id]
        if task.cancelled():
            return
        if (error := task.exception()) is not None:
            # Tried again at the next poll, not at once: the store may need a moment.
            job_logger(logger, job_id).error(
                "delivering callbacks failed: %r; trying again", error, exc_info=error
            )
            return
        # A callback stored while this task was finishing would otherwise wait for the poll.
        self._wake.set()
