"""``bench/quality.py``: CIDEr-D, METEOR and timing overlap of a run against reference ADs, on
a tiny reference set written here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.quality import QualityInputError, Segment, main, read_references, score

REFERENCES = """video,start,end,text,extra
film,1.0,4.0,A man walks down a dark street.,x
film,10.0,12.0,A woman opens the door.,x
film,20.0,24.0,Rain falls on the empty square.,x
other,0.0,2.0,Someone else's film.,x
"""


@pytest.fixture
def references(tmp_path: Path) -> Path:
    path = tmp_path / "refs.csv"
    path.write_text(REFERENCES, encoding="utf-8")
    return path


def write_run(path: Path, descriptions: list[tuple[float, float, str]]) -> Path:
    """A run as the CLI's --format json writes it (the fields scored, and others)."""
    items = [
        {"start": s, "end": e, "text": t, "scene_index": i, "max_words": 8, "fits": True}
        for i, (s, e, t) in enumerate(descriptions)
    ]
    path.write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    return path


def film_references(path: Path) -> list[Segment]:
    return [r for r in read_references(path) if r.video == "film"]


def test_a_run_that_says_what_the_references_say_scores_full_marks(references: Path) -> None:
    refs = film_references(references)
    run = [Segment("film", r.start, r.end, r.text) for r in refs]
    result = score(refs, run)
    assert result.references == 3
    assert result.meteor > 0.99
    assert result.cider_d == pytest.approx(10.0, abs=0.01)  # coco-caption's scale
    assert (result.timing_precision, result.timing_recall, result.timing_iou) == (1, 1, 1)


def test_wrong_words_and_half_the_time_score_lower(references: Path) -> None:
    refs = film_references(references)
    # The first AD's words at half its time; a wrong text in the second; the third missed;
    # and 2 s described where there is no reference AD.
    run = [
        Segment("film", 2.5, 4.0, "A man walks down a dark street."),
        Segment("film", 10.0, 12.0, "A dog sleeps."),
        Segment("film", 30.0, 32.0, "Rain falls on the empty square."),
    ]
    result = score(refs, run)
    # Described 5.5 s, references 9 s, both 3.5 s.
    assert result.timing_precision == pytest.approx(3.5 / 5.5)
    assert result.timing_recall == pytest.approx(3.5 / 9)
    assert result.timing_iou == pytest.approx(3.5 / 11)
    assert 0.3 < result.meteor < 0.4  # one of three references matched
    assert 0 < result.cider_d < 4  # a third of a perfect 10, give or take the IDF


def test_the_cli_scores_runs_named_by_their_video(
    references: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = write_run(tmp_path / "film.json", [(1.0, 4.0, "A man walks down a dark street.")])
    assert main([str(references), str(run), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    # The other video has no run: its reference is not scored.
    assert result["references"] == 3
    assert result["timing_precision"] == 1.0
    assert result["timing_recall"] == pytest.approx(3 / 9)
    renamed = write_run(tmp_path / "out.json", [(0.0, 2.0, "Someone else's film.")])
    assert main([str(references), f"other={renamed}", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["meteor"] > 0.99


def test_other_column_names_are_given_by_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    refs = tmp_path / "cmd.csv"
    rows = ["tt1,0,2,Человек идёт по улице.", "tt1,5,7,Дверь медленно закрывается за ним."]
    refs.write_text("imdbid,start_time,end_time,caption\n" + "\n".join(rows), encoding="utf-8")
    described = [
        (0.0, 2.0, "Человек идёт по улице."),
        (5.0, 7.0, "Дверь медленно закрывается за ним."),
    ]
    run = write_run(tmp_path / "tt1.json", described)
    columns = ["--video-column", "imdbid", "--start-column", "start_time"]
    columns += ["--end-column", "end_time", "--text-column", "caption"]
    assert main([str(refs), str(run), *columns, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    # CIDEr-D needs two references at least (its IDF over one document is 0) and texts of
    # four words (a text has no 4-grams below that).
    assert result["cider_d"] == pytest.approx(10.0, abs=0.01)
    assert result["timing_iou"] == 1.0


def test_unreadable_input_is_one_line(
    references: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(
        QualityInputError, match=r"no column 'video', 'start', 'end', 'text'; the header has a, b"
    ):
        bad = tmp_path / "bad.csv"
        bad.write_text("a,b\n1,2\n")
        read_references(bad)
    broken = tmp_path / "film.json"
    broken.write_text('{"not": "a run"}')
    assert main([str(references), str(broken)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "not a run's JSON" in err[0]
