"""The running service: backend (store and queue), worker, outbox and model, built from
settings at startup.

``Service`` is what the API's routes talk to. It starts in two steps: the store, the queue
and the outbox at once (so the API answers and undelivered callbacks go out), then, in the
background and off the event loop, the model, after which the worker starts taking jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from app.callbacks import CallbackClient, approval_event
from app.config import Settings
from app.errors import DescriberError, InputError, ModelLoadError, VoiceError
from app.metrics import Metrics
from app.models import Captioner, load_captioner
from app.models.translators import Translator, load_translator
from app.pipeline.download import download_folder
from app.pipeline.novelty import NoveltyScorer, make_scorer, scorer_for_language
from app.pipeline.sources import fetch
from app.pipeline.subtitles import load_dialogue, speech_intervals
from app.pipeline.translate import needs_translation, translation_for
from app.pipeline.types import Description, Interval
from app.pipeline.video import check_decode_device
from app.security import URLPolicy
from app.service.backends import build_backend
from app.service.jobs import (
    Job,
    JobConflict,
    JobOptions,
    JobRequest,
    JobStatus,
    OutboxEvent,
    RefusedOption,
    RefusedURL,
    StaleVersion,
    StoredDescription,
    Submission,
    job_logger,
)
from app.service.media import MediaKind, MediaLinks, MediaStore
from app.service.outbox import OutboxDispatcher
from app.service.review import Change, apply, known_scenes, new_description, scene_at
from app.service.voices import Voices
from app.service.worker import Outcome, Worker, WorkerOptions

logger = logging.getLogger(__name__)


class ModelState(StrEnum):
    """Where loading the model stands."""

    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"
    ELSEWHERE = "not loaded here: worker processes run the jobs"


#: How often a job's event stream looks for changes, seconds.
WATCH_INTERVAL = 0.25


@dataclass(frozen=True)
class Approval:
    """An approval queued for core: its callback, and whether this call queued it."""

    event: OutboxEvent
    descriptions: int
    revision: int
    created: bool
    rendering: bool
    """The job's audio is rendered again for this set; a ``media`` callback follows."""


class Service:
    """Everything the API needs, built from the settings.

    Args:
        settings: The service's settings.
        captioner: A captioner to use instead of loading ``settings.model`` (tests).
        scorer: A novelty scorer instead of METEOR (tests).
        translator: A translator to use instead of loading ``settings.translator`` (tests).
        runs_jobs: Load the model and run jobs in this process; None: where the backend
            runs them (``local``: yes; ``temporal``: only ``python -m app worker`` does).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        captioner: Captioner | None = None,
        scorer: NoveltyScorer | None = None,
        translator: Translator | None = None,
        runs_jobs: bool | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.backend = build_backend(settings)
        self.runs_jobs = self.backend.runs_jobs if runs_jobs is None else runs_jobs
        self.store = self.backend.store
        self.queue = self.backend.queue
        self.policy = URLPolicy(allow_private=settings.allow_private_urls)
        self.client: CallbackClient | None = None
        self.outbox: OutboxDispatcher | None = None
        if settings.core_url is not None:
            secret = settings.callback_secret
            self.client = CallbackClient(
                settings.core_url,
                secret=secret.get_secret_value() if secret is not None else None,
                timeout=settings.callback_timeout,
                backoff_initial=settings.callback_backoff_initial,
                backoff_max=settings.callback_backoff_max,
            )
            self.outbox = OutboxDispatcher(
                self.store,
                self.client,
                self.metrics,
                concurrency=settings.callback_concurrency,
                poll_interval=settings.queue_poll_interval,
            )
        self.voices = Voices(settings.narration_options())
        self.media = MediaStore(
            settings.media_dir,
            max_bytes=settings.media_max_bytes,
            retention=settings.media_retention,
            public_url=settings.public_url,
        )
        self.worker: Worker | None = None
        self.model_state = ModelState.LOADING
        self.model_error: str | None = None
        self._captioner = captioner
        self._scorer = scorer
        self._translator = translator
        self._startup: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the backend (interrupted jobs are queued again), start the outbox and load
        the model."""
        given_up = await self.backend.open(self.settings.job_max_attempts)
        # No job runs yet: a staging folder is what a crash left mid-rendering.
        await asyncio.to_thread(self.media.clear_partial)
        await asyncio.to_thread(self.media.sweep)
        if self.outbox is not None:
            self.outbox.start()
        else:
            logger.info("no core_url set: no callbacks; results stay available through the API")
        if not self.runs_jobs:
            self.model_state = ModelState.ELSEWHERE
            logger.info("ready: jobs go to the worker processes (python -m app worker)")
            return
        self._startup = asyncio.create_task(self._start_worker(given_up), name="load-model")

    async def started(self) -> bool:
        """Wait until the model is loaded and jobs are taken; False when loading failed."""
        if self._startup is not None:
            await asyncio.shield(self._startup)
        return self.model_state is not ModelState.FAILED

    async def _start_worker(self, given_up: list[Job]) -> None:
        settings = self.settings
        try:
            # Imports are not thread-safe side by side: scipy (under nltk's WordNet) looked into
            # the torch module the captioner's thread was still importing ("partially
            # initialized module 'torch'"). So torch first, whole; then the loads overlap.
            await asyncio.to_thread(importlib.import_module, "torch")
            # The captioner and the novelty scorer (WordNet or an embedding model) load side by
            # side: both take seconds.
            captioner, scorer, _, _ = await asyncio.gather(
                self._load_captioner(),
                self._load_scorer(),
                asyncio.to_thread(check_decode_device, settings.decode_device),
                asyncio.to_thread(download_folder, settings.download_dir),
            )
            translator = await self._load_translator(captioner)
        except DescriberError as exc:
            self.model_state = ModelState.FAILED
            self.model_error = str(exc)
            logger.error("cannot take jobs: %s", exc)
            return
        except Exception as exc:
            # A bug, not a setting: without this the task died unseen and /readyz said
            # "loading" for ever.
            self.model_state = ModelState.FAILED
            self.model_error = f"{type(exc).__name__}: {exc}"
            logger.exception("cannot take jobs: unexpected error while loading")
            return
        self.worker = Worker(
            queue=self.queue,
            store=self.store,
            captioner=captioner,
            options=WorkerOptions(
                media=settings.media_options(guard=self.policy),
                job_timeout=settings.job_timeout,
                callbacks=self.outbox is not None,
                mix=settings.mix_options(),
                store_retry_max=settings.queue_poll_interval,
            ),
            metrics=self.metrics,
            scorer=scorer,
            notify=self.outbox.notify if self.outbox is not None else None,
            concurrency=settings.workers,
            translator=translator,
            voices=self.voices,
            media=self.media,
        )
        for job in given_up:
            await self.worker.finish(
                job,
                Outcome(
                    JobStatus.NOT_PROCESSED,
                    f"the service stopped {job.attempts} times while processing this video; "
                    "it was not tried again",
                ),
            )
        self.backend.serve_jobs(self.worker)
        self.model_state = ModelState.READY
        logger.info("ready: taking jobs")

    async def _load_captioner(self) -> Captioner:
        if self._captioner is not None:
            return self._captioner
        logger.info("loading the captioning model %s", self.settings.model)
        return await asyncio.to_thread(
            load_captioner, self.settings.model, self.settings.caption_options()
        )

    async def _load_scorer(self) -> NoveltyScorer:
        if self._scorer is not None:
            return self._scorer
        name = scorer_for_language(self.settings.novelty_scorer, self.settings.language)
        return await asyncio.to_thread(make_scorer, name)

    async def _load_translator(self, captioner: Captioner) -> Translator | None:
        """The translator the captioner needs for the viewer's language, loaded once; None
        when it writes that language itself. Raises ``TranslatorMissing`` when none is set
        and ``ModelLoadError`` when it cannot be loaded."""
        language = self.settings.language
        if not needs_translation(captioner, language):
            return None
        translator = self._translator
        model = self.settings.translator_model()
        if translator is None and model is not None:
            logger.info("loading the translation model %s into %r", model, language)
            translator = await asyncio.to_thread(
                load_translator, model, language, self.settings.translate_options()
            )
        return translation_for(captioner, translator, language)

    async def stop(self) -> None:
        """Stop taking jobs, let running ones reach a safe point, close everything.

        Nothing accepted is lost: interrupted jobs are queued again and undelivered callbacks
        stay in the outbox, for the next start.
        """
        logger.info("shutting down")
        if self._startup is not None and not self._startup.done():
            self._startup.cancel()
            await asyncio.gather(self._startup, return_exceptions=True)
        if self.worker is not None:
            await self.backend.stop_jobs(self.worker)
        if self.outbox is not None:
            await self.outbox.stop()
        if self.client is not None:
            await self.client.aclose()
        await self.backend.close()
        logger.info("shut down")

    # --- what the routes call ----------------------------------------------------------------

    async def submit(
        self,
        url: str,
        subtitles: str | None,
        options: JobOptions | None = None,
        language: str | None = None,
    ) -> Submission:
        """Queue a job (or find the identical active one).

        Args:
            url: The video.
            subtitles: Its subtitles, if any.
            options: Audio, engine and voice of the job.
            language: The language the client expects the descriptions in, if it says.

        Raises:
            RefusedURL: A URL is not http(s) or names a refused address.
            RefusedOption: Another language than the service's, or a voice that cannot speak.
            QueueFull: The queue is at its limit.
        """
        options = options or JobOptions()
        for field, source in (("url", url), ("subtitles", subtitles)):
            if source is not None:
                try:
                    self.policy.check_literal(source)
                except InputError as exc:
                    raise RefusedURL(field, str(exc)) from exc
        if language is not None and language != self.settings.language:
            raise RefusedOption(
                "language",
                f"this service describes in {self.settings.language!r} (DESCRIBER_LANGUAGE), "
                f"not {language!r}; send the job to a service set up for {language!r}",
            )
        if options.audio:
            await self._check_voice(options)
        request = JobRequest(url=url, subtitles=subtitles, options=options)
        submission = await self.queue.submit(request)
        if submission.created:
            job_logger(logger, submission.job.id).info("queued: %s", url)
        return submission

    async def _check_voice(self, options: JobOptions) -> None:
        """Load the job's voice (once per voice), so that one that cannot speak is refused
        before the job is accepted. A job may not name a voice file: clients do not choose
        files of the server (DESCRIBER_VOICE may)."""
        if options.voice is not None and options.voice.lower().endswith(".onnx"):
            raise RefusedOption(
                "voice",
                f"{options.voice!r} is a voice file: a job may name a Piper voice id such as "
                "en_US-lessac-medium, and the service's DESCRIBER_VOICE a file",
            )
        try:
            await asyncio.to_thread(self.voices.narrator, options)
        except (VoiceError, ModelLoadError) as exc:
            field = "voice" if options.voice is not None else "tts" if options.tts else "language"
            raise RefusedOption(field, str(exc)) from exc

    async def job(self, job_id: str) -> tuple[Job, list[Description]]:
        """A job and its descriptions so far. Raises ``JobNotFound``."""
        job = await self.store.get_job(job_id)
        return job, await self.store.descriptions(job_id)

    def media_links(self, job: Job) -> MediaLinks | None:
        """Where a job's rendered audio is served; None until it is processed with audio."""
        if not job.options.audio or job.status is not JobStatus.PROCESSED:
            return None
        return self.media.links(job.id)

    async def media_file(self, job_id: str, kind: MediaKind) -> Path:
        """A job's rendered file. Raises ``JobNotFound`` or ``MediaMissing`` (why not)."""
        job = await self.store.get_job(job_id)
        return await asyncio.to_thread(self.media.path, job, kind)

    async def readiness(self) -> tuple[bool, str, str]:
        """Whether jobs can be taken, with the model's and the store's state."""
        model = self.model_state.value
        if self.model_error:
            model += f": {self.model_error}"
        try:
            await self.store.check_writable()
            store = "ok"
        except Exception as exc:  # any failure means not ready; the message says which
            store = f"{type(exc).__name__}: {exc}"
        ready = self.model_state in (ModelState.READY, ModelState.ELSEWHERE)
        return ready and store == "ok", model, store

    async def metrics_text(self) -> bytes:
        """The Prometheus exposition of the service's metrics."""
        self.metrics.refresh(await self.store.count_by_status(), await self.store.count_events())
        return self.metrics.render()

    # --- review: the job list, live progress, edits, approval --------------------------------

    async def recent_jobs(self, limit: int) -> list[Job]:
        """The most recent jobs, newest first."""
        return await self.store.recent_jobs(limit)

    async def watch(self, job_id: str) -> AsyncIterator[Job]:
        """Yield a job now and after each change of its status or progress; end once it is
        final (after yielding it), or when ``close_streams`` is called. Raises
        ``JobNotFound``."""
        last: Job | None = None
        while not self._closing.is_set():
            job = await self.store.get_job(job_id)
            if job != last:
                yield job
                last = job
            if job.status.final:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), WATCH_INTERVAL)

    def close_streams(self) -> None:
        """End every ``watch``: the server is shutting down, and waits for open responses
        before it stops the service."""
        self._closing.set()

    async def review(self, job_id: str) -> tuple[Job, list[StoredDescription], int]:
        """A job, its undeleted descriptions with ids and versions, and their revision."""
        job = await self.store.get_job(job_id)
        descriptions, revision = await self.store.review_state(job_id)
        return job, descriptions, revision

    async def edit(
        self, job_id: str, description_id: int, version: int, change: Change
    ) -> tuple[StoredDescription, list[str]]:
        """Change a description's text or window, made against ``version``.

        Returns:
            The description as stored now, and warnings (its words overrun the window).

        Raises:
            JobNotFound, DescriptionNotFound, JobConflict: the job is not processed;
            StaleVersion: the description changed meanwhile; InvalidEdit: a rule is broken.
        """
        job = await self._editable(job_id)
        current = await self._current(job_id, description_id, version)
        revised, warnings = apply(
            current.description,
            change,
            await self._dialogue(job),
            self.settings.words_per_second,
            await self._others(job_id, but=description_id),
        )
        stored = await self.store.revise_description(job_id, description_id, version, revised)
        job_logger(logger, job_id).info("description %d edited (v%d)", stored.id, stored.version)
        return stored, warnings

    async def delete(self, job_id: str, description_id: int, version: int) -> StoredDescription:
        """Delete a description (kept in the history). Raises as ``edit``."""
        await self._editable(job_id)
        await self._current(job_id, description_id, version)
        stored = await self.store.revise_description(job_id, description_id, version, None)
        job_logger(logger, job_id).info("description %d deleted", description_id)
        return stored

    async def insert(
        self, job_id: str, start: float, end: float | None, text: str
    ) -> tuple[StoredDescription, list[str]]:
        """Add a description starting at ``start``, in the scene that holds it. Raises as
        ``edit``."""
        job = await self._editable(job_id)
        spans = known_scenes(await self.store.scenes_described(job_id), job.progress.duration)
        wps = self.settings.words_per_second
        draft = new_description(scene_at(spans, start), start, end, text, wps)
        description, warnings = apply(
            draft, Change(), await self._dialogue(job), wps, await self._others(job_id)
        )
        stored = await self.store.insert_description(job_id, description)
        job_logger(logger, job_id).info("description %d inserted at %.3f s", stored.id, start)
        return stored, warnings

    async def history(
        self, job_id: str, description_id: int
    ) -> tuple[StoredDescription, list[StoredDescription]]:
        """A description now and its earlier versions, oldest first."""
        current = await self.store.get_description(job_id, description_id)
        return current, await self.store.description_history(job_id, description_id)

    async def approve(self, job_id: str) -> Approval:
        """Queue the job's current descriptions for core as the approved set.

        Raises:
            JobNotFound; JobConflict: the job is not processed, or no core is configured.
        """
        job = await self._editable(job_id)
        if self.outbox is None:
            raise JobConflict("no core_url is set: there is no core to send the approval to")
        descriptions, revision = await self.store.review_state(job_id)
        event = approval_event(job, [d.description for d in descriptions], revision)
        created = await self.store.add_event(event)
        self.outbox.notify(job_id)
        # Also for a revision approved before: its rendering may have been cut off by a
        # shutdown (the media callback's event id is the revision's, so core hears it once).
        rendering = job.options.audio and self.worker is not None
        if rendering:
            assert self.worker is not None
            self.worker.render_approved(job, [d.description for d in descriptions], revision)
        job_logger(logger, job_id).info(
            "approved at revision %d (%d descriptions)%s%s",
            revision,
            len(descriptions),
            "" if created else ", already approved",
            "; rendering its audio again" if rendering else "",
        )
        return Approval(event, len(descriptions), revision, created, rendering)

    async def _editable(self, job_id: str) -> Job:
        job = await self.store.get_job(job_id)
        if job.status is not JobStatus.PROCESSED:
            raise JobConflict(
                f"job {job_id} is {job.status.value}: its descriptions can be changed and "
                "approved once it is processed"
            )
        return job

    async def _current(self, job_id: str, description_id: int, version: int) -> StoredDescription:
        current = await self.store.get_description(job_id, description_id)
        if current.version != version:
            raise StaleVersion(description_id, version, current.version)
        return current

    async def _others(self, job_id: str, but: int | None = None) -> list[Description]:
        """The job's current descriptions, but the one with id ``but``."""
        current, _revision = await self.store.review_state(job_id)
        return [d.description for d in current if d.id != but]

    async def _dialogue(self, job: Job) -> list[Interval]:
        """When someone speaks in the job's film, from its subtitles (none without)."""
        if job.subtitles is None:
            return []
        options = self.settings.media_options(guard=self.policy).fetch

        def load(url: str) -> list[Interval]:
            with fetch(url, what="subtitles", options=options, guard=self.policy) as path:
                return speech_intervals(load_dialogue(path))

        return await asyncio.to_thread(load, job.subtitles)
