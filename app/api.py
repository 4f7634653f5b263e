"""The HTTP API: routes, their dependencies, and the one place domain errors become HTTP errors.

Routes are thin: they validate, call ``Service`` and shape the answer. ``create_app`` builds
an app whose lifespan starts the service (store, queue, worker, outbox, model) and stops it
gracefully (running jobs reach a safe point and are queued again).
"""

from __future__ import annotations

import importlib.resources
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.sse import EventSourceResponse, ServerSentEvent
from fastapi.staticfiles import StaticFiles

from app.config import Settings, get_settings
from app.errors import DescriberError
from app.models import Captioner
from app.models.translators import Translator
from app.pipeline.novelty import NoveltyScorer
from app.pipeline.writers import OutputFormat, render
from app.service.jobs import (
    DescriptionNotFound,
    InvalidEdit,
    Job,
    JobConflict,
    JobNotFound,
    QueueFull,
    RefusedOption,
    RefusedURL,
    StaleVersion,
    StoreUnavailable,
)
from app.service.media import MediaKind, MediaMissing
from app.service.review import Change
from app.service.schemas import (
    ApprovalOut,
    DescriptionIn,
    DescriptionPatch,
    EditOut,
    ErrorOut,
    Health,
    HistoryOut,
    JobAccepted,
    JobList,
    JobOut,
    JobSummary,
    ProcessRequest,
    Readiness,
    ReviewedDescriptionOut,
    ReviewOut,
)
from app.service.service import Service

logger = logging.getLogger(__name__)

_bearer = HTTPBearer(auto_error=False, description="The API token (setting api_token).")


class _Unauthorized(Exception):
    """The request lacks the bearer token."""


def get_service(request: Request) -> Service:
    """The service built by the app's lifespan."""
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(get_service)]


def _token_ok(service: Service, given: str) -> bool:
    token = service.settings.api_token
    return token is None or secrets.compare_digest(
        given.encode(), token.get_secret_value().encode()
    )


async def require_token(
    service: ServiceDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Refuse a request without the bearer token, when one is configured."""
    if not _token_ok(service, credentials.credentials if credentials is not None else ""):
        raise _Unauthorized


_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "Missing or wrong bearer token."},
    422: {"model": ErrorOut, "description": "Invalid request; the message names the field."},
}

health = APIRouter(tags=["health"])
api = APIRouter(dependencies=[Depends(require_token)], responses=_ERRORS)


@health.get("/healthz", response_model=Health, summary="The process is alive")
async def healthz() -> Health:
    return Health()


@health.get(
    "/readyz",
    response_model=Readiness,
    summary="The model is loaded and the store is writable",
    responses={503: {"model": Readiness, "description": "Not ready yet, or broken."}},
)
async def readyz(service: ServiceDep, response: Response) -> Readiness:
    ready, model, store = await service.readiness()
    if not ready:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Readiness(ready=ready, model=model, store=store)


@api.post(
    "/process",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobAccepted,
    summary="Describe a video",
    responses={
        503: {
            "model": ErrorOut,
            "description": "Queue full, or the job store cannot take writes; see Retry-After.",
        }
    },
)
async def process(body: ProcessRequest, service: ServiceDep, response: Response) -> JobAccepted:
    """Queue a video for description. A URL (with the same subtitles and options) that
    already has a queued or running job returns that job instead of queueing it twice."""
    submission = await service.submit(body.url, body.subtitles, body.options(), body.language)
    response.headers["Location"] = f"/jobs/{submission.job.id}"
    return JobAccepted(
        job_id=submission.job.id, status=submission.job.status, created=submission.created
    )


@api.get(
    "/jobs/{job_id}",
    response_model=JobOut,
    summary="Status, progress and descriptions of a job",
    responses={404: {"model": ErrorOut, "description": "No such job."}},
)
async def get_job(job_id: str, service: ServiceDep) -> JobOut:
    job, descriptions = await service.job(job_id)
    return JobOut.of_job(job, descriptions, service.media_links(job))


@api.get(
    "/jobs/{job_id}/descriptions",
    summary="A job's descriptions as JSON, WebVTT, SRT or a W3C DAPT script",
    response_class=Response,
    responses={
        200: {
            "content": {fmt.media_type: {} for fmt in OutputFormat},
            "description": "The descriptions so far, in time order.",
        },
        404: {"model": ErrorOut, "description": "No such job."},
    },
)
async def get_descriptions(
    job_id: str,
    service: ServiceDep,
    fmt: Annotated[OutputFormat, Query(alias="format")] = OutputFormat.JSON,
) -> Response:
    job, descriptions = await service.job(job_id)
    language = service.settings.language  # declared by DAPT
    links = service.media_links(job)  # DAPT references the spoken track, once rendered
    audio = None if links is None else links.audio_url
    return Response(render(descriptions, fmt, language, audio), media_type=fmt.media_type)


_MEDIA_RESPONSES: dict[int | str, dict[str, Any]] = {
    206: {"description": "The part asked for with a Range header (Content-Range says which)."},
    404: {
        "model": ErrorOut,
        "description": "No such job, or it has none: submitted without audio, not processed "
        "yet, failed, or removed by the media retention (the message says which).",
    },
    416: {"description": "The Range header asks for bytes past the end of the file."},
}


async def _media(job_id: str, kind: MediaKind, service: Service) -> FileResponse:
    path = await service.media_file(job_id, kind)
    return FileResponse(path, media_type=kind.media_type, filename=f"{job_id}-{path.name}")


@api.get(
    "/jobs/{job_id}/audio",
    summary="The job's descriptions spoken, alone on the film's timeline (AAC, .m4a)",
    response_class=FileResponse,
    responses={200: {"content": {MediaKind.AUDIO.media_type: {}}}, **_MEDIA_RESPONSES},
)
async def get_audio(job_id: str, service: ServiceDep) -> FileResponse:
    """Served with HTTP range requests (``Range: bytes=...`` answers 206)."""
    return await _media(job_id, MediaKind.AUDIO, service)


@api.get(
    "/jobs/{job_id}/media",
    summary="The film with its audio-description track added (Matroska)",
    response_class=FileResponse,
    responses={200: {"content": {MediaKind.FILM.media_type: {}}}, **_MEDIA_RESPONSES},
)
async def get_film(job_id: str, service: ServiceDep) -> FileResponse:
    """Served with HTTP range requests (``Range: bytes=...`` answers 206)."""
    return await _media(job_id, MediaKind.FILM, service)


@api.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
async def metrics(service: ServiceDep) -> Response:
    return Response(await service.metrics_text(), media_type="text/plain; version=0.0.4")


# --- the page's API: job list, live progress, review ------------------------------------------

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "No such job or description."}
}
_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {
        "model": ErrorOut,
        "description": "The job is not processed yet, or the description changed since the "
        "version sent (reload it and apply the change again).",
    }
}


@api.get("/jobs", response_model=JobList, summary="The most recent jobs, newest first")
async def list_jobs(
    service: ServiceDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> JobList:
    return JobList(jobs=[JobSummary.of(job) for job in await service.recent_jobs(limit)])


async def existing_job(job_id: str, service: ServiceDep) -> Job:
    """The job named in the path (404 before any streaming starts)."""
    return await service.store.get_job(job_id)


@api.get(
    "/jobs/{job_id}/events",
    response_class=EventSourceResponse,
    summary="Live status and progress of a job (server-sent events)",
    responses=_NOT_FOUND,
)
async def job_events(
    job: Annotated[Job, Depends(existing_job)], service: ServiceDep
) -> AsyncIterator[ServerSentEvent]:
    """A `text/event-stream`: an event `job` with the job's summary (the `JobSummary` schema:
    status, progress, reason) at once and after each change, then an event `end` once the job
    is processed or not processed, after which the stream closes. Comment lines keep an idle
    stream open. Ids count the events from 1. A stream that closes without `end` (the service
    is shutting down) can be opened again."""
    number, state = 0, job
    async for state in service.watch(job.id):
        number += 1
        yield ServerSentEvent(event="job", id=str(number), data=JobSummary.of(state))
    if state.status.final:
        yield ServerSentEvent(event="end", id=str(number + 1), data={"status": state.status})


@api.get(
    "/jobs/{job_id}/review",
    response_model=ReviewOut,
    summary="A job's descriptions with ids and versions, for review",
    responses=_NOT_FOUND,
)
async def review(job_id: str, service: ServiceDep) -> ReviewOut:
    job, descriptions, revision = await service.review(job_id)
    return ReviewOut(
        job_id=job.id,
        status=job.status,
        language=service.settings.language,
        words_per_second=service.settings.words_per_second,
        revision=revision,
        descriptions=[ReviewedDescriptionOut.of_stored(d) for d in descriptions],
    )


@api.patch(
    "/jobs/{job_id}/descriptions/{description_id}",
    response_model=EditOut,
    summary="Change a description's text or window",
    responses={**_NOT_FOUND, **_CONFLICT},
)
async def edit_description(
    job_id: str, description_id: int, body: DescriptionPatch, service: ServiceDep
) -> EditOut:
    """Saved only when `version` is the description's current version (else 409). The window
    must stay inside its scene and off the job's subtitled dialogue (else 422 naming the
    field); more words than the window holds is a warning. The previous version is kept."""
    change = Change(text=body.text, start=body.start, end=body.end)
    stored, warnings = await service.edit(job_id, description_id, body.version, change)
    return EditOut(description=ReviewedDescriptionOut.of_stored(stored), warnings=warnings)


@api.delete(
    "/jobs/{job_id}/descriptions/{description_id}",
    response_model=ReviewedDescriptionOut,
    summary="Delete a description (its versions are kept)",
    responses={**_NOT_FOUND, **_CONFLICT},
)
async def delete_description(
    job_id: str,
    description_id: int,
    version: Annotated[int, Query(ge=1, description="The version being deleted.")],
    service: ServiceDep,
) -> ReviewedDescriptionOut:
    return ReviewedDescriptionOut.of_stored(await service.delete(job_id, description_id, version))


@api.post(
    "/jobs/{job_id}/descriptions",
    status_code=status.HTTP_201_CREATED,
    response_model=EditOut,
    summary="Add a description (e.g. at the player's playhead)",
    responses={**_NOT_FOUND, **_CONFLICT},
)
async def insert_description(job_id: str, body: DescriptionIn, service: ServiceDep) -> EditOut:
    """It belongs to the scene holding `start`, and follows the rules of a change."""
    stored, warnings = await service.insert(job_id, body.start, body.end, body.text)
    return EditOut(description=ReviewedDescriptionOut.of_stored(stored), warnings=warnings)


@api.get(
    "/jobs/{job_id}/descriptions/{description_id}/history",
    response_model=HistoryOut,
    summary="A description and its previous versions",
    responses=_NOT_FOUND,
)
async def description_history(job_id: str, description_id: int, service: ServiceDep) -> HistoryOut:
    current, previous = await service.history(job_id, description_id)
    return HistoryOut(
        current=ReviewedDescriptionOut.of_stored(current),
        previous=[ReviewedDescriptionOut.of_stored(d) for d in previous],
    )


@api.post(
    "/jobs/{job_id}/approve",
    response_model=ApprovalOut,
    summary="Approve the descriptions: send the final set to core",
    responses={**_NOT_FOUND, **_CONFLICT},
)
async def approve(job_id: str, service: ServiceDep) -> ApprovalOut:
    """Queues the `approved` callback (see the README) with the current descriptions; its
    event id names the revision, so approving an unchanged set again sends nothing new."""
    approval = await service.approve(job_id)
    return ApprovalOut(
        job_id=job_id,
        event_id=approval.event.event_id,
        revision=approval.revision,
        descriptions=approval.descriptions,
        created=approval.created,
        rendering=approval.rendering,
    )


# --- errors: the only place domain exceptions turn into HTTP answers --------------------------


def _error(status_code: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status_code, headers=headers)


def _field(location: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in location if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


async def _validation_failed(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # FastAPI reads and validates the body before it runs the route's dependencies: without
    # this, a client without the token would learn about the body before being refused.
    credentials = await _bearer(request)
    if not _token_ok(get_service(request), credentials.credentials if credentials else ""):
        return await _domain_error(request, _Unauthorized())
    errors = [
        {"field": _field(tuple(e["loc"])), "message": e["msg"], "type": e["type"]}
        for e in exc.errors()
    ]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return JSONResponse({"detail": detail, "errors": errors}, status_code=422)


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    match exc:
        case _Unauthorized():
            return _error(401, "a valid bearer token is required", {"WWW-Authenticate": "Bearer"})
        case QueueFull():
            return _error(503, str(exc), {"Retry-After": str(exc.retry_after)})
        case StoreUnavailable():
            retry_after = get_service(request).settings.retry_after
            return _error(503, f"{exc}; retry later", {"Retry-After": str(retry_after)})
        case JobNotFound() | DescriptionNotFound() | MediaMissing():
            return _error(404, str(exc))
        case StaleVersion() | JobConflict():
            return _error(409, str(exc))
        case InvalidEdit():
            errors = [{"field": exc.field, "message": str(exc), "type": "edit"}]
            return JSONResponse({"detail": str(exc), "errors": errors}, status_code=422)
        case RefusedURL() | RefusedOption():
            return _error(422, f"{exc.field}: {exc}")
        case _:
            return _error(400, str(exc))


# --- the API docs ------------------------------------------------------------------------------

#: Where the docs pages' scripts and styles are served: Swagger UI 5 and ReDoc 2 as shipped by
#: the fastapi-offline package, so that /docs and /redoc work without reaching a CDN.
DOCS_ASSETS = "/docs/assets"


def _add_docs(app: FastAPI) -> None:
    """Serve Swagger UI at ``/docs`` and ReDoc at ``/redoc`` from local assets.

    FastAPI's own pages load their scripts from a CDN and are blank offline. Like the schema,
    the pages need no token: they hold no data.
    """
    assets = importlib.resources.files("fastapi_offline") / "static"
    app.mount(DOCS_ASSETS, StaticFiles(directory=str(assets)), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    def root(request: Request) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        base = root(request)
        return get_swagger_ui_html(
            openapi_url=base + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{base}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{base}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{base}{DOCS_ASSETS}/favicon.png",
            # Swagger UI would otherwise show a badge fetched from validator.swagger.io.
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        base = root(request)
        return get_redoc_html(
            openapi_url=base + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{base}{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{base}{DOCS_ASSETS}/favicon.png",
            with_google_fonts=False,
        )


# --- the page -----------------------------------------------------------------------------------

#: The page's files (HTML, CSS, JavaScript modules), shipped in the package.
PAGE_DIR = Path(__file__).parent / "service" / "static"


def _add_page(app: FastAPI) -> None:
    """Serve the review page at ``/`` and its files under ``/page/``. Like the docs, the page
    holds no data and needs no token; it asks for one when the API does."""
    app.mount("/page", StaticFiles(directory=PAGE_DIR), name="page")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(PAGE_DIR / "index.html")


# --- the app -----------------------------------------------------------------------------------


def create_app(
    settings: Settings | None = None,
    captioner: Captioner | None = None,
    *,
    scorer: NoveltyScorer | None = None,
    translator: Translator | None = None,
) -> FastAPI:
    """Build the service's ASGI app.

    Args:
        settings: The settings; None reads them from the environment.
        captioner: A captioner to use instead of loading ``settings.model`` (tests).
        scorer: A novelty scorer to use instead of METEOR (tests).
        translator: A translator to use instead of loading ``settings.translator`` (tests).

    Returns:
        The app; its lifespan starts and stops the service.
    """
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = Service(settings, captioner=captioner, scorer=scorer, translator=translator)
        await service.start()
        app.state.service = service
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(
        title="Audio describer",
        summary="Timed descriptions of what is on screen, placed in the pauses of dialogue.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # served from local assets by _add_docs
        redoc_url=None,
    )
    _add_docs(app)
    _add_page(app)
    app.include_router(health)
    app.include_router(api)
    app.add_exception_handler(RequestValidationError, _validation_failed)
    app.add_exception_handler(DescriberError, _domain_error)
    app.add_exception_handler(_Unauthorized, _domain_error)
    return app
