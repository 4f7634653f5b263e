"""The one model resolver: every model the project loads is a local directory or a Hugging
Face hub id, with a revision, a cache directory and an offline switch, and fails with one
style of message that says what was tried and what to do.

Captioners and the sentence encoder load through :func:`load_model`; translators and voices
will too. Importing this module is cheap (no torch, no transformers).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from app.errors import ModelLoadError

logger = logging.getLogger(__name__)

T = TypeVar("T")


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

    def pretrained_kwargs(self) -> dict[str, Any]:
        """The keyword arguments every ``from_pretrained`` takes for this source."""
        return {
            "revision": self.revision,
            "cache_dir": self.cache_dir,
            "local_files_only": self.local_files_only,
        }


def load_model(
    source: ModelSource,
    what: str,
    load: Callable[[ModelSource], T],
    *,
    known: Sequence[str] = (),
    hint: Callable[[Exception], str] | None = None,
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

    Raises:
        ModelLoadError: The model cannot be found or loaded; the message says what was tried.
    """
    from safetensors import SafetensorError

    try:
        return load(source)
    except (OSError, ValueError, RuntimeError, SafetensorError) as exc:
        # transformers and huggingface_hub raise OSError (or a subclass) for missing files.
        if isinstance(exc, OSError):
            raise ModelLoadError(not_found_message(source, what, exc, known)) from exc
        advice = hint(exc) if hint is not None else ""
        raise ModelLoadError(
            f"Could not load the {what} {source.name_or_path!r}: {first_line(exc)}. "
            f"{advice or damaged_files_hint()}"
        ) from exc


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
    source: ModelSource, what: str, exc: BaseException, known: Sequence[str] = ()
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
    return (
        f"Could not find the {what} {name!r}. Tried the local directory {str(local)!r} "
        f"(no such directory) and {where}: {first_line(exc)}. Pass an existing model "
        f"directory{valid}."
    )
