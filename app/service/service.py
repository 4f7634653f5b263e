"""The running service: backend (store and queue), worker, outbox and model, built from
settings at startup.

``Service`` is what the API's routes talk to. It starts in two steps: the store, the queue
and the outbox at once (so the API answers and undelivered callbacks go out), then, in the
background and off the event loop, the model, after which the worker starts taking jobs.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from enum import StrEnum

from app.callbacks import CallbackClient
from app.config import Settings
from app.errors import DescriberError, InputError
from app.metrics import Metrics
from app.models import Captioner, load_captioner
from app.models.translators import Translator, load_translator
from app.pipeline.novelty import NoveltyScorer, make_scorer, scorer_for_language
from app.pipeline.translate import needs_translation, translation_for
from app.pipeline.types import Description
from app.pipeline.video import check_decode_device
from app.security import URLPolicy
from app.service.backends import build_backend
from app.service.jobs import Job, JobRequest, JobStatus, RefusedURL, Submission, job_logger
from app.service.outbox import OutboxDispatcher
from app.service.worker import Outcome, Worker, WorkerOptions

logger = logging.getLogger(__name__)


class ModelState(StrEnum):
    """Where loading the model stands."""

    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"
    ELSEWHERE = "not loaded here: worker processes run the jobs"


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
        self.worker: Worker | None = None
        self.model_state = ModelState.LOADING
        self.model_error: str | None = None
        self._captioner = captioner
        self._scorer = scorer
        self._translator = translator
        self._startup: asyncio.Task[None] | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the backend (interrupted jobs are queued again), start the outbox and load
        the model."""
        given_up = await self.backend.open(self.settings.job_max_attempts)
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
            captioner, scorer, _ = await asyncio.gather(
                self._load_captioner(),
                self._load_scorer(),
                asyncio.to_thread(check_decode_device, settings.decode_device),
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
                store_retry_max=settings.queue_poll_interval,
            ),
            metrics=self.metrics,
            scorer=scorer,
            notify=self.outbox.notify if self.outbox is not None else None,
            concurrency=settings.workers,
            translator=translator,
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

    async def submit(self, url: str, subtitles: str | None) -> Submission:
        """Queue a job (or find the identical active one).

        Raises:
            RefusedURL: A URL is not http(s) or names a refused address.
            QueueFull: The queue is at its limit.
        """
        for field, source in (("url", url), ("subtitles", subtitles)):
            if source is not None:
                try:
                    self.policy.check_literal(source)
                except InputError as exc:
                    raise RefusedURL(field, str(exc)) from exc
        submission = await self.queue.submit(JobRequest(url=url, subtitles=subtitles))
        if submission.created:
            job_logger(logger, submission.job.id).info("queued: %s", url)
        return submission

    async def job(self, job_id: str) -> tuple[Job, list[Description]]:
        """A job and its descriptions so far. Raises ``JobNotFound``."""
        job = await self.store.get_job(job_id)
        return job, await self.store.descriptions(job_id)

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
