"""The one model resolver: every model the project loads is a local directory or a Hugging
Face hub id, with a revision, a cache directory and an offline switch, and fails with one
style of message that says what was tried and what to do.

Captioners and the sentence encoder load through :func:`load_model`; translators and voices
will too. Importing this module is cheap (no torch, no transformers).

How a name is read (:func:`is_local_path`): an existing directory is loaded from; a name that
cannot be a hub id (absolute, starting with ``./``, ``../`` or ``~``, more than one ``/``, or
characters a hub id cannot hold) or whose first folder exists here (``models/blip`` next to
a ``models`` folder) is a local path, and a missing one fails at once, without the network;
anything else (``name`` or ``org/name``) is a hub id. Before a hub id is downloaded, the hub
is asked once, within ``HF_HUB_ETAG_TIMEOUT`` seconds, whether it answers: when it does not,
a model in the cache is loaded from there, and one that is not fails at once with one message,
instead of huggingface_hub's minute of retries.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from app.errors import ModelLoadError

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: The file every model directory and hub repository holds; the hub is asked for it.
CONFIG_FILE = "config.json"


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from."""

    name_or_path: str
    """A directory written by ``save_pretrained`` (or holding the model's files), or a hub id."""
    revision: str | None = None
    """Hub revision (branch, tag or commit); ignored for a local directory."""
    cache_dir: str | None = None
    """Hub cache directory; None uses the Hugging Face default (HF_HUB_CACHE)."""
    local_files_only: bool = False
    """Never reach the hub: only a local directory or the cache (also on when HF_HUB_OFFLINE=1)."""
    resolved: bool = False
    """Set by :func:`resolve`: the name was checked (and the hub asked) already."""

    def pretrained_kwargs(self) -> dict[str, Any]:
        """The keyword arguments every ``from_pretrained`` takes for this source."""
        return {
            "revision": self.revision,
            "cache_dir": self.cache_dir,
            "local_files_only": self.local_files_only,
        }


@dataclass(frozen=True)
class SettingNames:
    """The settings that choose a model and offline mode, as messages name them."""

    model: str = "the model name"
    """What sets the model, e.g. ``--model / DESCRIBER_MODEL``."""
    offline: str = "local_files_only"
    """What keeps the loader off the network besides HF_HUB_OFFLINE=1."""


def is_local_path(name: str) -> bool:
    """Whether ``name`` means a local path rather than a hub id (rule in the module docstring)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if Path(name).expanduser().exists():
        return True
    try:
        validate_repo_id(name)
    except HFValidationError:
        return True
    return "/" in name and Path(name.split("/", 1)[0]).is_dir()


def resolve(
    source: ModelSource,
    what: str,
    settings: SettingNames | None = None,
    known: Sequence[str] = (),
) -> ModelSource:
    """Check where a model is before anything is loaded, failing fast where it cannot be.

    Args:
        source: Where the model is said to be.
        what: What the model is for, in messages ("captioning model").
        settings: The settings to name in messages.
        known: Hub ids known to work, offered when a local path is missing.

    Returns:
        The source to load from: ``source``, or the same with ``local_files_only`` when the
        hub does not answer and the model is in the cache.

    Raises:
        ModelLoadError: A local path that does not exist, or a hub id that is not in the cache
            while the hub does not answer. The message is one line that names the settings.
    """
    from huggingface_hub import constants as hub_constants

    if source.resolved:
        return source
    settings = settings or SettingNames()
    name = source.name_or_path
    resolved = dataclasses.replace(source, resolved=True)
    if Path(name).expanduser().is_dir():
        return resolved
    if is_local_path(name):
        raise ModelLoadError(_missing_path_message(name, what, settings, known))
    if source.local_files_only or hub_constants.HF_HUB_OFFLINE:
        return resolved
    problem = _hub_problem(source)
    if problem is None:
        return resolved
    cache_dir = source.cache_dir or hub_constants.HF_HUB_CACHE
    if _in_cache(source):
        logger.warning(
            "The Hugging Face hub at %s does not answer (%s): loading the %s %r from the cache %s",
            hub_constants.ENDPOINT,
            problem,
            what,
            name,
            cache_dir,
        )
        return dataclasses.replace(resolved, local_files_only=True)
    raise ModelLoadError(
        f"Could not download the {what} {name!r}: the Hugging Face hub at "
        f"{hub_constants.ENDPOINT} does not answer ({problem}) and the model is not in the "
        f"cache {cache_dir!r}. Set {settings.model} to a local model directory, or download "
        "the model once where the hub answers and then run offline (HF_HUB_OFFLINE=1 or "
        f"{settings.offline})."
    )


def _missing_path_message(
    name: str, what: str, settings: SettingNames, known: Sequence[str]
) -> str:
    local = Path(name).expanduser().resolve()
    hub_id = f"a hub id ({', '.join(known)})" if known else "a hub id"
    return (
        f"Could not find the {what} {name!r}: it names a local path (not a hub id such as "
        f"'org/name'), and there is no directory {str(local)!r}. Set {settings.model} to a "
        f"directory written by save_pretrained() or to {hub_id}; to run offline, use a "
        f"directory or a hub id in the cache with HF_HUB_OFFLINE=1 or {settings.offline}."
    )


def _hub_problem(source: ModelSource) -> str | None:
    """Ask the hub once for the model's config file; None when it answers, else why not.

    Any HTTP answer below 500 counts as an answer (a private or missing model is reported by
    the load itself); 5xx, a timeout or a refused connection do not.
    """
    import httpx
    from huggingface_hub import constants as hub_constants
    from huggingface_hub import hf_hub_url

    url = hf_hub_url(source.name_or_path, CONFIG_FILE, revision=source.revision)
    try:
        response = httpx.head(url, timeout=hub_constants.HF_HUB_ETAG_TIMEOUT)
    except httpx.TransportError as exc:
        return f"{type(exc).__name__}: {first_line(exc)}"
    if response.status_code >= 500:
        return f"HTTP {response.status_code}"
    return None


def _in_cache(source: ModelSource) -> bool:
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(
        source.name_or_path, CONFIG_FILE, cache_dir=source.cache_dir, revision=source.revision
    )
    return isinstance(cached, str)


def load_model(
    source: ModelSource,
    what: str,
    load: Callable[[ModelSource], T],
    *,
    known: Sequence[str] = (),
    hint: Callable[[Exception], str] | None = None,
    settings: SettingNames | None = None,
) -> T:
    """Load a model with ``load`` and turn every way it can fail into a ``ModelLoadError``.

    Args:
        source: Where the model is.
        what: What the model is for, in messages ("captioning model").
        load: Loads from the source (``from_pretrained`` calls with
            ``source.pretrained_kwargs()``); its errors of transformers, huggingface_hub,
            safetensors and torch pass here.
        known: Hub ids known to work, offered when the model cannot be found.
        hint: What the user can do about an error met once the model was found; by default,
            fetch its files again.
        settings: The settings that choose the model, named in messages.

    Raises:
        ModelLoadError: The model cannot be found or loaded; the message says what was tried.
    """
    from safetensors import SafetensorError

    source = resolve(source, what, settings, known)
    try:
        return load(source)
    except (OSError, ValueError, RuntimeError, SafetensorError) as exc:
        # transformers and huggingface_hub raise OSError (or a subclass) for missing files.
        if isinstance(exc, OSError):
            raise ModelLoadError(not_found_message(source, what, exc, known, settings)) from exc
        advice = hint(exc) if hint is not None else ""
        raise ModelLoadError(
            f"Could not load the {what} {source.name_or_path!r}: {first_line(exc)}. "
            f"{advice or damaged_files_hint()}"
        ) from exc


def model_type(source: ModelSource) -> str:
    """The ``model_type`` in the model's config.json, read as JSON: from the directory, or
    downloaded from the hub (or taken from its cache) with huggingface_hub. Nothing heavy is
    imported (no transformers), so the kind of a model is known before any of it loads.

    Errors pass through for :func:`load_model`: OSError when the file is missing (a
    directory without it, a hub id or revision that does not exist, offline and not cached),
    ValueError when it is not JSON or names no ``model_type``.
    """
    local = Path(source.name_or_path).expanduser()
    if local.is_dir():
        path = local / CONFIG_FILE
    else:
        from huggingface_hub import hf_hub_download

        path = Path(hf_hub_download(source.name_or_path, CONFIG_FILE, **source.pretrained_kwargs()))
    config = json.loads(path.read_text(encoding="utf-8"))
    found = config.get("model_type") if isinstance(config, dict) else None
    if not isinstance(found, str) or not found:
        raise ValueError(f"its {CONFIG_FILE} names no model_type")
    return found


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, without its final full stop."""
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    return lines[0].rstrip(".")


def damaged_files_hint() -> str:
    """What to do about a model whose files were found but could not be read."""
    return (
        "Its files may be incomplete or damaged: delete them (or the model's folder in the "
        "hub cache) and download or save_pretrained() them again."
    )


def not_found_message(
    source: ModelSource,
    what: str,
    exc: BaseException,
    known: Sequence[str] = (),
    settings: SettingNames | None = None,
) -> str:
    """Say where a model was looked for, and what the user can do."""
    from huggingface_hub import constants as hub_constants

    name = source.name_or_path
    local = Path(name).expanduser().resolve()
    if local.is_dir():
        return (
            f"Could not read the {what} in the directory {str(local)!r}: {first_line(exc)}. "
            "The directory must hold config.json and the other files written by "
            "save_pretrained(); if they are there, they may be incomplete or damaged: "
            "save_pretrained() them again."
        )
    cache_dir = source.cache_dir or hub_constants.HF_HUB_CACHE
    hub = f"the hub id {name!r}" + (f" at revision {source.revision!r}" if source.revision else "")
    if source.local_files_only or hub_constants.HF_HUB_OFFLINE:
        where = (
            f"{hub} in the cache {cache_dir!r} only (offline: local_files_only or "
            "HF_HUB_OFFLINE=1 is set, so nothing was downloaded)"
        )
    else:
        where = f"{hub} on the Hugging Face hub (cache {cache_dir!r})"
    valid = f" or one of the known model ids: {', '.join(known)}" if known else " or a hub id"
    setting = (settings or SettingNames()).model
    return (
        f"Could not find the {what} {name!r}. Tried the local directory {str(local)!r} "
        f"(no such directory) and {where}: {first_line(exc)}. Set {setting} to an existing "
        f"model directory{valid}."
    )
