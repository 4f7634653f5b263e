"""The worker: takes jobs from the queue and runs the pipeline on them, off the event loop.

Every failure rule lives in ``Worker.run_job``: the time limit of a job, how an outcome is
sorted into PROCESSED / NOT_PROCESSED / interrupted, and the final bookkeeping, which is
shielded from cancellation. Each description and the callback announcing it are stored
before the pipeline may go on, so a crash loses at most the description being made.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Generator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from app.callbacks import description_event, media_event, status_event
from app.errors import DescriberError, RenderError, Stopped
from app.metrics import Metrics
from app.models import Captioner
from app.models.translators import Translator
from app.pipeline.describe import MediaOptions, describe_media
from app.pipeline.narration import Clip, Narration, Narrator
from app.pipeline.novelty import NoveltyScorer
from app.pipeline.soundtrack import MixOptions
from app.pipeline.sources import fetch
from app.pipeline.types import Description, Progress, Stage
from app.service.jobs import Job, JobStatus, OutboxEvent, StoreUnavailable, job_logger
from app.service.media import MediaStore
from app.service.queue import JobQueue
from app.service.store import JobStore
from app.service.voices import Voices

logger = logging.getLogger(__name__)

#: Seconds between two progress writes of a job (a stage change is always written).
PROGRESS_INTERVAL = 1.0


class JobInterrupted(Stopped):
    """The pipeline stopped at a safe point because the job's stop signal was set."""


@dataclass(frozen=True)
class WorkerOptions:
    """How the worker runs jobs."""

    media: MediaOptions = field(default_factory=MediaOptions)
    """Pipeline options: downloads, speech, scenes, captions."""
    job_timeout: float = 4 * 3600.0
    """Seconds a job may run, download included."""
    callbacks: bool = False
    """Write an outbox callback for each description and final status (core is configured)."""
    mix: MixOptions = field(default_factory=MixOptions)
    """How the film's audio-description track is mixed (jobs with ``"audio": true``)."""
    store_retry_max: float = 5.0
    """Longest wait, seconds, between two tries of a job's final write (or of queueing it
    again) while the store refuses writes (disk full); tries go on until the worker stops."""


@dataclass(frozen=True)
class Outcome:
    """How a job ended: a final status and, for NOT_PROCESSED, the reason."""

    status: JobStatus
    reason: str | None = None


class _Run:
    """State shared by a job's coroutine and its pipeline thread."""

    def __init__(self, job: Job, on_stored: Callable[[Description], None] | None) -> None:
        self.job = job
        self.on_stored = on_stored
        self.stop = threading.Event()
        self.stored = 0
        self.progress = Progress()
        """The last progress the pipeline reported."""
        self._stage: Stage | None = None
        self._stage_started = time.monotonic()
        self._last_write = 0.0

    def stage_change(self, stage: Stage | None) -> tuple[Stage, float] | None:
        """Note the current stage; returns the stage that just ended and its duration."""
        if stage == self._stage:
            return None
        now = time.monotonic()
        ended = None if self._stage is None else (self._stage, now - self._stage_started)
        self._stage, self._stage_started = stage, now
        return ended

    def due(self, changed: bool) -> bool:
        now = time.monotonic()
        if changed or now - self._last_write >= PROGRESS_INTERVAL:
            self._last_write = now
            return True
        return False


class Worker:
    """Runs jobs from a queue, one at a time per worker task, ``concurrency`` tasks at once.

    Args:
        queue: Where jobs come from.
        store: Where descriptions and final statuses go.
        captioner: The model, shared by all tasks (it serialises its calls if it must).
        options: Pipeline options, limits, and whether callbacks are written.
        metrics: Counters to update.
        scorer: Novelty scorer shared by all jobs (None: the pipeline's METEOR default).
        notify: Called with a job id when it has a new callback in the outbox.
        concurrency: Jobs run at once.
        translator: Translates an English-only captioner's descriptions into the language
            of ``options``; None where none is needed.
        voices: Narrators of jobs with ``"audio": true``.
        media: Where those jobs' audio is rendered.
    """

    def __init__(
        self,
        *,
        queue: JobQueue,
        store: JobStore,
        captioner: Captioner,
        options: WorkerOptions,
        metrics: Metrics,
        scorer: NoveltyScorer | None = None,
        notify: Callable[[str], None] | None = None,
        concurrency: int = 1,
        translator: Translator | None = None,
        voices: Voices,
        media: MediaStore,
    ) -> None:
        self.queue = queue
        self.store = store
        self.captioner = captioner
        self.options = options
        self.metrics = metrics
        self.scorer = scorer
        self.translator = translator
        self.voices = voices
        self.media = media
        self._notify = notify or (lambda job_id: None)
        self._concurrency = concurrency
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="pipeline")
        # Approved descriptions rendered again: one at a time, in the order approved, beside
        # the jobs (a film's rendering must not wait for another film's captioning).
        self._render_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="render")
        self._renders: set[asyncio.Task[None]] = set()
        self._render_stop = threading.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._runs: dict[str, _Run] = {}
        self._stopping = False
        self._stopped = asyncio.Event()

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker tasks."""
        for index in range(self._concurrency):
            self._tasks.append(asyncio.create_task(self._loop(), name=f"worker-{index}"))
        logger.info("%d worker(s) started", self._concurrency)

    async def stop(self) -> None:
        """Stop taking jobs and let running ones reach a safe point; they are queued again."""
        self._stopping = True
        self._stopped.set()
        self.queue.close()
        for run in self._runs.values():
            run.stop.set()
            job_logger(logger, run.job.id).info("stopping at the next safe point")
        self._render_stop.set()
        if self._tasks or self._renders:
            await asyncio.gather(*self._tasks, *self._renders, return_exceptions=True)
        self._tasks.clear()
        self._executor.shutdown(wait=True)
        self._render_executor.shutdown(wait=True)

    async def _loop(self) -> None:
        while (job := await self.queue.next_job()) is not None:
            await self.run_job(job)

    # --- one job -----------------------------------------------------------------------------

    async def run_job(self, job: Job) -> None:
        """Run one claimed job to its end, or to a safe point when stopped (then it is given
        back to the queue); never raises but ``CancelledError``."""
        log = job_logger(logger, job.id)
        try:
            outcome = await self.execute(job)
        except asyncio.CancelledError:
            # Cancelled from outside (hard shutdown): give the job back, then go.
            await asyncio.shield(self._release(job, log))
            raise
        if outcome is None:
            await asyncio.shield(self._release(job, log))
        else:
            await asyncio.shield(self.finish(job, outcome))

    async def execute(
        self, job: Job, on_stored: Callable[[Description], None] | None = None
    ) -> Outcome | None:
        """Run the pipeline on a started job and sort how it ended; stores nothing final.

        Args:
            job: The job, already marked running.
            on_stored: Called on the event loop with each description once it is stored (or
                found stored by an earlier run).

        Returns:
            The outcome to record, or None when the job stopped at a safe point (worker
            stopping, store refusing writes): it is to run again. Raises ``CancelledError``
            only, once the pipeline got to a safe point.
        """
        log = job_logger(logger, job.id)
        if self._stopping:  # handed over while stop() was running: give it back at once
            return None
        log.info("started (run %d): %s", job.attempts, job.url)
        run = _Run(job, on_stored)
        self._runs[job.id] = run
        try:
            async with asyncio.timeout(self.options.job_timeout):
                await self._describe(run)
            return Outcome(JobStatus.PROCESSED)
        except Stopped:  # at a safe point, or in the middle of a download
            log.info("interrupted at a safe point after %d new description(s)", run.stored)
            return None
        except StoreUnavailable as exc:  # a description could not be stored: run it again
            log.warning("stopped: %s; to run again", exc)
            return None
        except TimeoutError:
            return Outcome(
                JobStatus.NOT_PROCESSED,
                f"the job took longer than {self.options.job_timeout:g} s, the longest a job "
                "may run",
            )
        except DescriberError as exc:  # bad input or model: the message says what to do
            return Outcome(JobStatus.NOT_PROCESSED, str(exc))
        except Exception as exc:
            log.exception("failed unexpectedly")
            return Outcome(
                JobStatus.NOT_PROCESSED, f"internal error ({type(exc).__name__}); see the logs"
            )
        finally:
            self._runs.pop(job.id, None)

    async def _release(self, job: Job, log: logging.LoggerAdapter[logging.Logger]) -> None:
        if await self._persist(lambda: self.queue.release(job), "queueing it again", log):
            log.info("queued again")

    async def _persist(
        self,
        write: Callable[[], Awaitable[None]],
        what: str,
        log: logging.LoggerAdapter[logging.Logger],
    ) -> bool:
        """Run a store write until it succeeds, waiting longer after each failure (a full
        disk gets freed). Returns False when the worker stops first: the job is then still
        ``running`` in the store, and the next start queues it again."""
        delay = min(0.1, self.options.store_retry_max)
        while True:
            try:
                await write()
            except Exception as exc:
                if self._stopping:
                    log.error("%s failed (%s); it runs again after a restart", what, exc)
                    return False
                log.warning("%s failed (%s); trying again in %.1f s", what, exc, delay)
                with contextlib.suppress(TimeoutError):  # the wait, cut short by a stop
                    await asyncio.wait_for(self._stopped.wait(), delay)
                delay = min(delay * 2, self.options.store_retry_max)
                continue
            return True

    async def finish(self, job: Job, outcome: Outcome) -> None:
        """Store a job's final status and its callback, trying again while the store refuses
        writes; never raises (logs instead)."""
        log = job_logger(logger, job.id)
        event: OutboxEvent | None = None
        count = 0
        ended_before = False

        async def write() -> None:
            nonlocal event, count, ended_before
            # Another run of the job may have ended it: two workers overlap when one is
            # taken for lost but was not (the temporal backend).
            if (await self.store.get_job(job.id)).status.final:
                ended_before = True
                return
            count = len(await self.store.descriptions(job.id))
            media = None
            if job.options.audio and outcome.status is JobStatus.PROCESSED:
                media = dataclasses.asdict(self.media.links(job.id))
            event = (
                status_event(job, outcome.status, outcome.reason, count, media)
                if self.options.callbacks
                else None
            )
            await self.store.finish(job.id, outcome.status, outcome.reason, event)

        if not await self._persist(write, "storing the final status", log):
            return
        if ended_before:
            log.info("another run of this job ended it; its status stays")
            return
        self.metrics.jobs_finished.labels(outcome.status.value).inc()
        if event is not None:
            self._notify(job.id)
        if outcome.status is JobStatus.PROCESSED:
            log.info("processed: %d description(s)", count)
        else:
            log.warning("not processed: %s", outcome.reason)

    async def _describe(self, run: _Run) -> None:
        """Run the pipeline in a thread; on cancellation, stop it at a safe point first."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, self._pipeline, run, loop)
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            job_logger(logger, run.job.id).info("stopping at the next safe point")
            run.stop.set()
            # The thread cannot be killed: wait until it gets to a safe point and lets go of
            # its files and the model, however many times we are cancelled meanwhile.
            while not future.done():
                try:
                    await asyncio.shield(future)
                except asyncio.CancelledError:
                    continue
                except BaseException:  # its exception is not ours: we were cancelled
                    break
            raise

    def _pipeline(self, run: _Run, loop: asyncio.AbstractEventLoop) -> None:
        """The pipeline thread: describe the video, storing each description as it comes;
        with ``"audio": true``, narrate each before it is stored, then render the audio."""
        job = run.job
        log = job_logger(logger, job.id)

        def on_progress(progress: Progress) -> None:
            run.progress = progress
            ended = run.stage_change(progress.stage)
            if ended is not None and ended[0] is not Stage.DONE:  # done is no work
                stage, seconds = ended
                self.metrics.stage_seconds.labels(stage.value).observe(seconds)
                log.info("%s took %.2f s", stage.value, seconds)
            if progress.stage is Stage.DONE:
                self.metrics.count_scenes(progress)
            if run.due(changed=ended is not None or progress.stage is Stage.DONE):
                written = asyncio.run_coroutine_threadsafe(
                    self.store.set_progress(job.id, progress), loop
                )
                written.add_done_callback(lambda f: _log_failure(f, log, "progress write"))

        if not job.options.audio:
            self._describe_into_store(run, loop, job.url, on_progress, None)
            return
        # The voice first: a voice that cannot speak fails before the download.
        narrator = self.voices.narrator(job.options)
        on_progress(Progress(stage=Stage.DOWNLOADING))
        media = self.options.media
        # The rendering needs the film itself: downloaded once, here, for both steps.
        with fetch(
            job.url, what="video", options=media.fetch, guard=media.guard, stop=run.stop
        ) as video:
            narrations = self._describe_into_store(run, loop, str(video), on_progress, narrator)
            on_progress(dataclasses.replace(run.progress, stage=Stage.RENDERING))
            self._render(run, loop, video, narrations, narrator)

    def _describe_into_store(
        self,
        run: _Run,
        loop: asyncio.AbstractEventLoop,
        video: str,
        on_progress: Callable[[Progress], None],
        narrator: Narrator | None,
    ) -> dict[int, Narration]:
        """Describe ``video`` (narrating each description first with ``narrator``) and store
        each description as it comes; returns the narrations, by scene.

        Raises:
            JobInterrupted: The job was stopped at a safe point.
        """
        job = run.job
        narrations: dict[int, Narration] = {}
        descriptions: Generator[Description, None, None] = describe_media(  # type: ignore[assignment]
            video,
            self.captioner,
            subtitles=job.subtitles,
            options=self.options.media,
            scorer=self.scorer,
            on_progress=on_progress,
            stop=run.stop,
            translator=self.translator,
            name=job.url,
        )
        with closing(descriptions):
            for description in descriptions:
                if narrator is not None:
                    narration = narrator.narrate(description)
                    description = narration.description
                    narrations[description.scene_index] = narration
                # Wait until it is stored: the safe points are between two descriptions.
                asyncio.run_coroutine_threadsafe(self._record(run, description), loop).result()
        if run.stop.is_set():
            raise JobInterrupted
        return narrations

    def _render(
        self,
        run: _Run,
        loop: asyncio.AbstractEventLoop,
        video: Path,
        narrations: dict[int, Narration],
        narrator: Narrator,
    ) -> None:
        """Render the job's description track and film from its stored descriptions.

        A description stored by an earlier run (the job was interrupted) is the one that was
        delivered: its speech is this run's when the text is the same, else spoken again.

        Raises:
            RenderError: Rendering failed; the reason says the descriptions were delivered.
            JobInterrupted: The job was stopped; nothing was left in the media directory.
        """
        job = run.job
        log = job_logger(logger, job.id)
        stored = asyncio.run_coroutine_threadsafe(self.store.descriptions(job.id), loop).result()
        spoken: list[Clip] = []
        for description in stored:
            narration = narrations.get(description.scene_index)
            if narration is None or narration.description != description:
                log.info("scene %d: speaking the stored description", description.scene_index)
                narration = narrator.narrate(description)
            spoken.append(narration.clip)
        started = time.monotonic()
        try:
            folder = self.media.render(job.id, video, spoken, self.options.mix, stop=run.stop)
        except Stopped as exc:
            raise JobInterrupted from exc
        except RenderError as exc:
            raise RenderError(
                f"the {len(stored)} description(s) were delivered, but rendering their audio "
                f"failed: {exc}"
            ) from exc
        log.info("rendered the audio into %s in %.1f s", folder, time.monotonic() - started)

    # --- approved descriptions ---------------------------------------------------------------

    def render_approved(self, job: Job, descriptions: list[Description], revision: int) -> None:
        """Render an audio job's track and film again from approved descriptions, in the
        background; then core gets a ``media`` callback with the links, or with why it failed
        (the previous audio stays served). A reviewer's texts are spoken whole: faster, up to
        the speed-up cap, never shortened. Stopped by :meth:`stop` (the previous audio stays,
        and no callback is sent)."""
        task = asyncio.create_task(
            self._render_approved(job, descriptions, revision), name=f"render-{job.id}"
        )
        self._renders.add(task)
        task.add_done_callback(self._renders.discard)

    async def _render_approved(
        self, job: Job, descriptions: list[Description], revision: int
    ) -> None:
        log = job_logger(logger, job.id)
        loop = asyncio.get_running_loop()
        reason: str | None = None
        started = time.monotonic()
        try:
            await loop.run_in_executor(
                self._render_executor, self._render_reviewed, job, descriptions
            )
        except Stopped:
            log.info(
                "rendering of approved revision %d stopped; the previous audio stays", revision
            )
            return
        except (DescriberError, ValueError) as exc:
            reason = f"rendering the approved descriptions failed: {exc}; the previous audio stays"
            log.error("revision %d: %s", revision, reason)
        else:
            log.info(
                "approved revision %d rendered in %.1f s", revision, time.monotonic() - started
            )
        if self.options.callbacks:
            links = None if reason is not None else dataclasses.asdict(self.media.links(job.id))
            await self.store.add_event(media_event(job, revision, links, reason))
            self._notify(job.id)

    def _render_reviewed(self, job: Job, descriptions: list[Description]) -> None:
        spoken = self.voices.narrator(job.options)
        narrator = Narrator(spoken.engine, dataclasses.replace(spoken.options, shorten=False))
        media = self.options.media
        stop = self._render_stop
        with fetch(
            job.url, what="video", options=media.fetch, guard=media.guard, stop=stop
        ) as video:
            clips = [narrator.narrate(description).clip for description in descriptions]
            self.media.render(job.id, video, clips, self.options.mix, stop=stop)

    async def _record(self, run: _Run, description: Description) -> None:
        job = run.job
        event = description_event(job, description) if self.options.callbacks else None
        stored = await self.store.add_description(job.id, description, event)
        if run.on_stored is not None:
            run.on_stored(description)
        if stored:
            run.stored += 1
            self.metrics.descriptions.inc()
            if event is not None:
                self._notify(job.id)
            job_logger(logger, job.id).debug(
                "scene %d described: %s", description.scene_index, description.text
            )
        else:
            job_logger(logger, job.id).info(
                "scene %d was described by an earlier run; kept as it was",
                description.scene_index,
            )


def _log_failure(
    future: Future[None], log: logging.LoggerAdapter[logging.Logger], what: str
) -> None:
    if future.cancelled():
        return
    error = future.exception()
    if error is not None:
        log.warning("%s failed: %s", what, error)
