"""Tests for the METEOR novelty check and the offline WordNet it needs."""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Iterator
from pathlib import Path

import nltk.data
import pytest
from nltk.corpus.reader.wordnet import WordNetCorpusReader

from app.errors import WordNetMissing
from app.pipeline.novelty import NoveltyFilter, NoveltyScorer, tokenize
from app.pipeline.novelty.chrf import DEFAULT_CHRF_THRESHOLD, ChrfScorer
from app.pipeline.novelty.meteor import DEFAULT_METEOR_THRESHOLD, MeteorScorer
from app.pipeline.wordnet import DEBIAN_WORDNET_DIR, install_wordnet, load_wordnet, main

needs_debian_wordnet = pytest.mark.skipif(
    not (DEBIAN_WORDNET_DIR / "data.noun").is_file(),
    reason="needs Debian's wordnet-base and wordnet-sense-index (scripts/install.sh)",
)

# (previous, current) pairs measured in the docstring of app.pipeline.novelty.
REPEATS = [
    ("a man is walking down the street", "a man walks down a street"),
    ("a car on the road", "an automobile on the road"),
    ("a woman sitting on a couch", "a woman is sitting on a sofa"),
    ("a dog running on the beach", "a dog runs along the beach"),
    ("two men talking in a room", "two men are talking in a room"),
    ("a group of people standing around a table", "a group of people stand around a table"),
    ("a woman holding a cup of coffee", "a woman is holding a coffee cup"),
    ("a tall building", "tall buildings"),
    ("a city street at night", "a street in the city at night"),
    ("a girl riding a bike down the road", "a young girl rides a bicycle on a road"),
    ("a man driving a car", "a man is driving a car at night"),
    ("a man is driving a car at night", "a man driving a car"),
]
NEW_SCENES = [
    ("a dog runs on the beach", "two women sit at a table"),
    ("a car on the road", "a boat on the water"),
    ("a woman walking in the rain", "a woman talking on the phone"),
    ("a man sitting at a desk", "a man lying in a hospital bed"),
    ("a close up of a man's face", "a view of a city at night"),
    ("a man in a suit standing in front of a building", "a woman in a red dress dancing"),
    ("a man is walking down the street", "a woman is sitting on a bed"),
    ("a woman sitting on a couch", "a man standing in a kitchen"),
    ("a man driving a car", "a plane flying in the sky"),
]


class NoSynonyms:
    """A WordNet stand-in that knows no word, so METEOR can only match words and stems."""

    def synsets(self, lemma: str) -> list[object]:
        return []

    def morphy(self, form: str, pos: str | None = None) -> str | None:
        return None


class RecordingScorer:
    """A fake scorer: 1.0 for texts with the same first word, else 0.0; records each call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def similarity(self, previous: str, current: str) -> float:
        self.calls.append((previous, current))
        return 1.0 if previous.split()[0] == current.split()[0] else 0.0


@pytest.fixture(scope="session")
def wordnet(tmp_path_factory: pytest.TempPathFactory) -> WordNetCorpusReader:
    """The WordNet the service would use, built into a temporary directory if need be."""
    return load_wordnet(tmp_path_factory.mktemp("nltk_data"))


@pytest.fixture(scope="session")
def scorer(wordnet: WordNetCorpusReader) -> MeteorScorer:
    return MeteorScorer(wordnet)


@pytest.fixture
def no_nltk_data(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Hide every WordNet NLTK could find on its own."""
    monkeypatch.setattr(nltk.data, "path", [])
    yield


def test_meteor_scorer_is_a_novelty_scorer(scorer: MeteorScorer) -> None:
    assert isinstance(scorer, NoveltyScorer)


def test_rephrased_caption_is_a_repeat(scorer: MeteorScorer) -> None:
    similarity = scorer.similarity("a man is walking down the street", "a man walks down a street")
    assert similarity >= DEFAULT_METEOR_THRESHOLD


def test_different_scene_is_new(scorer: MeteorScorer) -> None:
    similarity = scorer.similarity("a dog runs on the beach", "two women sit at a table")
    assert similarity < DEFAULT_METEOR_THRESHOLD


@pytest.mark.parametrize(("previous", "current"), REPEATS)
def test_measured_repeats_reach_threshold(
    scorer: MeteorScorer, previous: str, current: str
) -> None:
    assert scorer.similarity(previous, current) >= DEFAULT_METEOR_THRESHOLD


@pytest.mark.parametrize(("previous", "current"), NEW_SCENES)
def test_measured_new_scenes_stay_below_threshold(
    scorer: MeteorScorer, previous: str, current: str
) -> None:
    assert scorer.similarity(previous, current) < DEFAULT_METEOR_THRESHOLD


@pytest.mark.parametrize("text", ["a man walks down a street", "dog", "A Dog!"])
def test_identical_texts_score_one(scorer: MeteorScorer, text: str) -> None:
    assert scorer.similarity(text, text) == 1.0


def test_case_and_punctuation_do_not_matter(scorer: MeteorScorer) -> None:
    assert scorer.similarity("A dog, running.", "a dog running") == 1.0


@pytest.mark.parametrize(("previous", "current"), [("", ""), ("", "a dog"), ("a dog", "  ")])
def test_empty_text_scores_zero(scorer: MeteorScorer, previous: str, current: str) -> None:
    assert scorer.similarity(previous, current) == 0.0


def test_scorer_matches_synonyms_through_wordnet(wordnet: WordNetCorpusReader) -> None:
    previous, current = "a car on the road", "an automobile on the road"
    with_synonyms = MeteorScorer(wordnet).similarity(previous, current)
    words_only = MeteorScorer(NoSynonyms()).similarity(previous, current)
    assert with_synonyms > words_only + 0.2


def test_first_caption_is_new() -> None:
    novelty = NoveltyFilter(RecordingScorer(), threshold=0.5)
    assert novelty.check("dog on a beach") == (True, 0.0)


def test_filter_compares_with_last_accepted_caption() -> None:
    fake = RecordingScorer()
    novelty = NoveltyFilter(fake, threshold=0.5)
    assert novelty.check("dog on a beach") == (True, 0.0)
    assert novelty.check("dog in the sea") == (False, 1.0)
    assert novelty.check("cat on a roof") == (True, 0.0)
    assert novelty.check("dog again") == (True, 0.0)
    # The rejected "dog in the sea" was never a reference; "cat on a roof" replaced the first.
    assert fake.calls == [
        ("dog on a beach", "dog in the sea"),
        ("dog on a beach", "cat on a roof"),
        ("cat on a roof", "dog again"),
    ]


def test_filter_with_history_compares_with_each_remembered_caption() -> None:
    novelty = NoveltyFilter(RecordingScorer(), threshold=0.5, history=2)
    novelty.check("dog on a beach")
    novelty.check("cat on a roof")
    assert novelty.check("dog again") == (False, 1.0)
    novelty.check("bird in a tree")
    assert novelty.check("dog once more") == (True, 0.0)


def test_blank_caption_is_not_new_and_not_remembered() -> None:
    fake = RecordingScorer()
    novelty = NoveltyFilter(fake, threshold=0.5)
    assert novelty.check("  ") == (False, 0.0)
    assert novelty.check("dog on a beach") == (True, 0.0)
    assert novelty.check("...") == (False, 0.0)
    assert novelty.check("dog in the sea") == (False, 1.0)
    assert fake.calls == [("dog on a beach", "dog in the sea")]


@pytest.mark.parametrize(("threshold", "history"), [(0.0, 1), (1.5, 1), (0.5, 0)])
def test_filter_rejects_bad_settings(threshold: float, history: int) -> None:
    with pytest.raises(ValueError):
        NoveltyFilter(RecordingScorer(), threshold=threshold, history=history)


def test_filter_with_meteor_drops_rephrased_caption(scorer: MeteorScorer) -> None:
    novelty = NoveltyFilter(scorer, DEFAULT_METEOR_THRESHOLD)
    assert novelty.check("a man is walking down the street")[0]
    assert not novelty.check("a man walks down a street")[0]
    assert novelty.check("a dog runs on the beach")[0]


@needs_debian_wordnet
@pytest.mark.usefixtures("no_nltk_data")
def test_install_wordnet_builds_a_readable_corpus(tmp_path: Path) -> None:
    corpus = install_wordnet(tmp_path)

    assert corpus == tmp_path / "corpora" / "wordnet"
    lexnames = (corpus / "lexnames").read_text().splitlines()
    assert len(lexnames) == 45
    assert lexnames[5] == "05\tnoun.animal\t1"
    reader = load_wordnet(tmp_path)
    assert Path(str(reader.root)) == corpus
    assert reader.synsets("walk")
    assert reader.synset("dog.n.01").lexname() == "noun.animal"
    previous, current = "a car on the road", "an automobile on the road"
    assert MeteorScorer(reader).similarity(previous, current) > MeteorScorer(
        NoSynonyms()
    ).similarity(previous, current)


@needs_debian_wordnet
@pytest.mark.usefixtures("no_nltk_data")
def test_load_wordnet_skips_the_multilingual_sense_map(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # NLTK's reader reads index.sense twice at every load to map synsets for Open
    # Multilingual Wordnet (over half of the load); METEOR needs English only.
    install_wordnet(tmp_path)

    def refuse(self: WordNetCorpusReader, version: str | None = None) -> dict[str, str]:
        raise AssertionError("index.sense read while loading WordNet")

    monkeypatch.setattr(WordNetCorpusReader, "index_sense", refuse)
    reader = load_wordnet(tmp_path)

    assert reader.map30 is None
    assert "car" in {lemma.name() for s in reader.synsets("automobile") for lemma in s.lemmas()}


@needs_debian_wordnet
@pytest.mark.usefixtures("no_nltk_data")
def test_load_wordnet_builds_missing_corpus_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.pipeline.wordnet")

    reader = load_wordnet(tmp_path)

    assert (tmp_path / "corpora" / "wordnet" / "lexnames").is_file()
    assert reader.synsets("automobile")
    assert any("built it in" in record.getMessage() for record in caplog.records)


@needs_debian_wordnet
@pytest.mark.usefixtures("no_nltk_data")
def test_load_wordnet_reads_zipped_corpus_from_nltk_download(tmp_path: Path) -> None:
    corpus = install_wordnet(tmp_path / "built")
    data_dir = tmp_path / "nltk_data"
    (data_dir / "corpora").mkdir(parents=True)
    with zipfile.ZipFile(data_dir / "corpora" / "wordnet.zip", "w") as archive:
        for path in sorted(corpus.iterdir()):
            archive.write(path, f"wordnet/{path.name}")

    reader = load_wordnet(data_dir)

    assert "wordnet.zip" in str(reader.root)
    assert reader.synsets("walk")


@pytest.mark.usefixtures("no_nltk_data")
def test_load_wordnet_without_any_wordnet_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(WordNetMissing) as caught:
        load_wordnet(tmp_path / "nltk_data", source_dir=tmp_path / "no-wordnet")

    message = str(caught.value)
    assert "apt-get install wordnet-base wordnet-sense-index" in message
    assert "nltk.download('wordnet')" in message
    assert not (tmp_path / "nltk_data" / "corpora").exists()


def test_install_wordnet_from_missing_source_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(WordNetMissing, match="apt-get install wordnet-base") as caught:
        install_wordnet(tmp_path / "nltk_data", source_dir=tmp_path / "no-wordnet")
    assert str(tmp_path / "no-wordnet") in str(caught.value)


@needs_debian_wordnet
@pytest.mark.usefixtures("no_nltk_data")
def test_main_installs_and_prints_corpus(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "corpora" / "wordnet")


def test_main_reports_missing_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path), "--source-dir", str(tmp_path / "no-wordnet")]) == 1
    assert "apt-get install wordnet-base" in capsys.readouterr().err


def test_chrf_sees_a_russian_repeat_through_its_word_endings() -> None:
    chrf = ChrfScorer()
    # The same scene, a participle for a verb: a repeat; another scene: new.
    repeat = chrf.similarity("Мужчина сидит на диване.", "Мужчина, сидящий на диване.")
    new = chrf.similarity("Машина на дороге.", "Лодка на воде.")
    assert repeat >= DEFAULT_CHRF_THRESHOLD > new
    assert chrf.similarity("Мужчина сидит.", "мужчина  сидит") == 1.0
    assert chrf.similarity("...", "Мужчина сидит.") == 0.0


def test_words_of_any_script_count() -> None:
    assert tokenize("Мужчина, сидящий на диване!") == ["мужчина", "сидящий", "на", "диване"]
    assert NoveltyFilter(ChrfScorer(), 0.5).check("Кошка спит.") == (True, 0.0)
