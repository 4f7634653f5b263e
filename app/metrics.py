"""Prometheus metrics of the service, in a registry of their own (one per app instance)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from app.pipeline.types import Progress
from app.service.jobs import EventState, JobStatus

#: Stage durations span seconds (download of a clip) to hours (a film).
_STAGE_BUCKETS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 14400)


class Metrics:
    """The service's counters, gauges and histograms.

    Gauges that mirror the store (jobs by status, queue depth, outbox) are set just before
    each scrape by ``refresh``; the rest are updated where things happen.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.jobs = Gauge(
            "describer_jobs", "Jobs in the store, by status.", ["status"], registry=self.registry
        )
        self.queue_depth = Gauge(
            "describer_queue_depth", "Jobs waiting to be processed.", registry=self.registry
        )
        self.jobs_finished = Counter(
            "describer_jobs_finished",
            "Jobs finished by this process, by final status.",
            ["status"],
            registry=self.registry,
        )
        self.descriptions = Counter(
            "describer_descriptions", "Descriptions stored.", registry=self.registry
        )
        self.scenes = Counter(
            "describer_scenes",
            "Scenes of finished videos, by what became of them: without_pause and similar "
            "(never captioned), captioned.",
            ["outcome"],
            registry=self.registry,
        )
        self.captions_dropped = Counter(
            "describer_captions_dropped",
            "Captions of finished videos not sent: empty, or too close to a recent one.",
            registry=self.registry,
        )
        self.stage_seconds = Histogram(
            "describer_stage_duration_seconds",
            "Time jobs spent in each pipeline stage.",
            ["stage"],
            buckets=_STAGE_BUCKETS,
            registry=self.registry,
        )
        self.callbacks = Counter(
            "describer_callbacks",
            "Callbacks to core settled, by result (delivered, failed).",
            ["result"],
            registry=self.registry,
        )
        self.callback_retries = Counter(
            "describer_callback_retries",
            "Callback tries that failed transiently and were retried.",
            registry=self.registry,
        )
        self.outbox = Gauge(
            "describer_outbox_events",
            "Callbacks in the outbox, by state.",
            ["state"],
            registry=self.registry,
        )
        for result in (EventState.DELIVERED, EventState.FAILED):
            self.callbacks.labels(result.value)
        for status in JobStatus:
            if status.final:
                self.jobs_finished.labels(status.value)

    def count_scenes(self, final: Progress) -> None:
        """Add what became of the scenes of a video the pipeline finished."""
        self.scenes.labels("without_pause").inc(final.scenes_without_pause)
        self.scenes.labels("similar").inc(final.scenes_similar)
        self.scenes.labels("captioned").inc(final.scenes_captioned)
        self.captions_dropped.inc(final.captions_dropped)

    def refresh(self, jobs: dict[JobStatus, int], events: dict[EventState, int]) -> None:
        """Set the gauges that mirror the store."""
        for status, count in jobs.items():
            self.jobs.labels(status.value).set(count)
        self.queue_depth.set(jobs.get(JobStatus.QUEUED, 0))
        for state, count in events.items():
            self.outbox.labels(state.value).set(count)

    def render(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)
