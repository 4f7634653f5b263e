"""Benchmark: jobs per minute against 1, 2, 4 and 8 worker processes of the ``temporal``
backend, side by side with the ``local`` backend running as many jobs at once in one process.

The model is a fake OpenAI-compatible endpoint (``tests.fixtures.chat``) that answers each
caption after a fixed ``--latency`` (2 s by default), so the two CPU cores of a small
machine do not bound the figures: what is measured is how well the roles spread jobs,
not the model. The films are short generated clips (``--scenes`` one-second colour scenes,
320x240), one URL per job. For each count N, PostgreSQL (a fresh database) and a Temporal
dev server (``temporal server start-dev``) carry an API process (``python -m app serve``)
and N worker processes (``python -m app worker``, one job at a time each); ``--jobs-per
-worker`` x N jobs are submitted at once and waited for. The ``local`` rows run one
``python -m app serve`` with ``DESCRIBER_WORKERS=N`` (and N times the requests in flight to
the model that one worker process has, ``DESCRIBER_API_CONCURRENCY``, 4).

Printed per backend and N: wall time from the first submission to the last final status,
jobs per minute, scaling efficiency (jobs/min at N / (N x jobs/min at 1)), and the time from
submission to the start of work (``started_at - created_at`` of the API) of the first N jobs
to start, the ones that found a worker idle: p50 and max.

Run::

    .venv/bin/python bench/scale.py                      # 1, 2, 4, 8 processes, both backends
    .venv/bin/python bench/scale.py --counts 1 2 --backends temporal --latency 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import load_average, log, machine_line, table
from tests.fixtures.chat import SERVED, ChatEndpoint, serving_chat
from tests.fixtures.media import make_coded_video
from tests.fixtures.postgres import PostgresServer
from tests.fixtures.servers import free_port, serving_directory, wait_until
from tests.fixtures.temporal import TemporalServer, WorkerProcess
from tests.test_service_process import FINAL, ServiceProcess


@dataclass(frozen=True)
class Round:
    """One backend at one process count."""

    backend: str
    count: int
    jobs: int
    wall: float
    pickup: list[float]
    """Seconds from submission to start of the jobs that found a worker idle."""

    @property
    def per_minute(self) -> float:
        return self.jobs / self.wall * 60


def _when(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def _run_jobs(api: ServiceProcess, urls: list[str], count: int) -> tuple[float, list[float]]:
    """Submit every URL at once, wait for all; returns (wall seconds, idle pickups)."""
    ids = [api.submit(url) for url in urls]
    jobs = [
        wait_until(
            lambda job_id=job_id: (j := api.job(job_id))["status"] in FINAL and j, 900, "a job"
        )
        for job_id in ids
    ]
    failed = [j for j in jobs if j["status"] != "processed"]
    if failed:
        raise SystemExit(f"{len(failed)} job(s) not processed: {failed[0]['reason']}")
    created = [_when(j["created_at"]) for j in jobs]
    started = sorted((_when(j["started_at"]), _when(j["created_at"])) for j in jobs)
    finished = [_when(j["finished_at"]) for j in jobs]
    pickups = [start - submitted for start, submitted in started[:count]]
    return max(finished) - min(created), pickups


def _env(chat: ChatEndpoint, **settings: str) -> dict[str, str]:
    return {
        **os.environ,
        "DESCRIBER_PORT": str(free_port()),
        "DESCRIBER_ALLOW_PRIVATE_URLS": "true",
        "DESCRIBER_API_BASE": chat.url,
        "DESCRIBER_MODEL": SERVED,
        "DESCRIBER_NOVELTY_THRESHOLD": "1.0",
        "DESCRIBER_MIN_GAP": "0.5",
        "DESCRIBER_FRAME_OFFSET": "0.5",
        "DESCRIBER_QUEUE_POLL_INTERVAL": "0.5",
        **{f"DESCRIBER_{k.upper()}": v for k, v in settings.items()},
    }


@contextmanager
def _processes() -> Iterator[list[object]]:
    """Processes started in the block, killed at its end."""
    started: list[object] = []
    try:
        yield started
    finally:
        for role in started:
            process = role.process  # type: ignore[attr-defined]
            if process.poll() is None:
                process.kill()
                process.wait()


def temporal_round(
    root: Path, chat: ChatEndpoint, urls: list[str], count: int, postgres: PostgresServer,
    temporal: TemporalServer,
) -> Round:  # fmt: skip
    env = _env(
        chat,
        backend="temporal",
        database_url=postgres.new_database(),
        temporal_address=temporal.address,
        temporal_task_queue=f"bench-{count}",
    )
    with _processes() as started:
        workers = [WorkerProcess(env, root / f"worker-{count}-{n}.log") for n in range(count)]
        started.extend(workers)
        api = ServiceProcess(env, root / f"api-{count}.log")
        started.append(api)
        api.wait_ready()
        for worker in workers:
            worker.wait_ready(600)
        wall, pickups = _run_jobs(api, urls, count)
    return Round("temporal", count, len(urls), wall, pickups)


def local_round(root: Path, chat: ChatEndpoint, urls: list[str], count: int) -> Round:
    env = _env(
        chat,
        db_path=str(root / f"local-{count}.sqlite3"),
        workers=str(count),
        # The requests in flight to the model that N worker processes would have.
        api_concurrency=str(4 * count),
    )
    with _processes() as started:
        api = ServiceProcess(env, root / f"local-{count}.log")
        started.append(api)
        api.wait_ready(600)
        wall, pickups = _run_jobs(api, urls, count)
    return Round("local", count, len(urls), wall, pickups)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--backends", nargs="+", default=["temporal", "local"])
    parser.add_argument("--latency", type=float, default=2.0, help="seconds per caption")
    parser.add_argument("--scenes", type=int, default=6, help="one-second scenes per film")
    parser.add_argument("--jobs-per-worker", type=int, default=3)
    args = parser.parse_args(argv)
    load_at_start = load_average()
    rounds: list[Round] = []
    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="describer-scale-")))
        chat = stack.enter_context(serving_chat(ChatEndpoint(latency=args.latency)))
        chat.answer = lambda n: f"Scene {n}: " + " ".join(f"w{n}x{k}" for k in range(4))
        films = root / "www"
        films.mkdir()
        colours = ("red", "green", "blue", "yellow")
        film = make_coded_video(
            root / "film.mp4", [(colours[i % 4], 25) for i in range(args.scenes)]
        )
        base = stack.enter_context(serving_directory(films))
        postgres = temporal = None
        if "temporal" in args.backends:
            postgres = PostgresServer()
            postgres.start()
            stack.callback(postgres.remove)
            (root / "temporal").mkdir()
            temporal = TemporalServer(root / "temporal")
            temporal.start()
            stack.callback(temporal.kill)
        for count in args.counts:
            urls = []
            for n in range(args.jobs_per_worker * count):
                name = f"film-{count}-{n}.mp4"
                (films / name).write_bytes(film.path.read_bytes())
                urls.append(f"{base}/{name}")
            for backend in args.backends:
                log(f"{backend}: {count} process(es), {len(urls)} jobs")
                if backend == "temporal":
                    assert postgres is not None and temporal is not None
                    done = temporal_round(root, chat, urls, count, postgres, temporal)
                else:
                    done = local_round(root, chat, urls, count)
                rounds.append(done)
                log(f"  {done.per_minute:.1f} jobs/min")
    print(
        f"{args.scenes} scenes of 1 s per film, {args.latency:g} s per caption, "
        f"{args.jobs_per_worker} jobs per worker, submitted at once"
    )
    rows = []
    for done in rounds:
        single = next(r for r in rounds if r.backend == done.backend and r.count == 1)
        efficiency = done.per_minute / (done.count * single.per_minute)
        rows.append(
            [
                done.backend,
                done.count,
                done.jobs,
                f"{done.wall:.1f}",
                f"{done.per_minute:.1f}",
                f"{efficiency:.0%}",
                f"{statistics.median(done.pickup):.2f}",
                f"{max(done.pickup):.2f}",
            ]
        )
    print(
        table(
            [
                "backend",
                "workers",
                "jobs",
                "wall s",
                "jobs/min",
                "efficiency",
                "submit-to-start p50 s",
                "max s",
            ],
            rows,
        )
    )
    print(machine_line(load_at_start))
    return 0


if __name__ == "__main__":
    sys.exit(main())
