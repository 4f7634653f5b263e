"""What the keyframe scan decides for each group of pictures (a keyframe to the next), beside
the full scan's cuts (issue 12): the facts its rules read (intra frames, the clock, the
keyframes' differences in structure and colour, brightness, motion, packet sizes) and the
decision, so that a miss can be traced to the rule that skipped its group.

    .venv/bin/python bench/keyframe_groups.py VIDEO [VIDEO ...] [--json] [--all]

One row per group: its start and end (seconds), frames, intra frames inside (``?`` where the
stream does not tell them), ``clock`` where the encoder ended it by its keyframe interval,
the share of that interval it ran (``GroupOfPictures.interval_share``), the keyframes'
content difference and colour distance, the brightness and mean motion right after each
keyframe, the largest packet over the group's upper quartile (``spike``), whether the
packets say the cut was keyed late or the picture stood still before the next keyframe,
the decision (``cut`` on the end keyframe without decoding, ``skip``, ``decode``, or
``decode, quiet from T``), and the full scan's cuts inside the group and on its end. A cut
inside a group taken as a cut or skipped, or on the end of a skipped one, is marked
``MISS``, a cut taken where the full scan has none ``FALSE CUT``. Without ``--all`` only
the groups around those are printed, after a line per video that counts them. The
keyframe scan never hands over to the full scan here (``KeyframeRule.most_refined`` 1). The
bench never edits ``app/``.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.pipeline import scan
from app.pipeline.scan import KeyframeCut, Stretch, list_scenes, look_at_keyframes
from app.pipeline.scenes import KeyframeRule, ScanMode, SceneOptions
from app.pipeline.video import VideoReader

FULL = SceneOptions(scan=ScanMode.FULL)
KEYFRAMES = SceneOptions(scan=ScanMode.KEYFRAMES, keyframes=KeyframeRule(most_refined=1.0))


@dataclass
class GroupRow:
    """One group of pictures, what the rules read of it, and what the plan does with it."""

    start: float
    end: float
    frames: int
    intra: int | None
    clock: bool
    interval_share: float | None
    difference: float | None
    colour: float | None
    brightness: tuple[float | None, float | None]
    motion: tuple[float | None, float | None]
    spike: float
    keyed_late: bool
    froze: bool
    decision: str
    cuts_inside: list[float]
    cut_on_end: bool

    @property
    def miss(self) -> bool:
        """Whether a full-scan cut lies inside a group the plan does not decode, or on the
        end of one it skips."""
        decoded = self.decision.startswith("decode")
        return (bool(self.cuts_inside) and not decoded) or (
            self.cut_on_end and self.decision == "skip"
        )

    @property
    def false_cut(self) -> bool:
        """Whether the plan takes a cut on the group's end keyframe where the full scan has
        none."""
        return self.decision == "cut" and not self.cut_on_end


def group_rows(path: Path) -> list[GroupRow]:
    """The rows of ``path``'s groups (the keyframe pass and plan, and the full scan)."""
    cuts = [scanned.scene.start for scanned in list_scenes(path, FULL, 1.0)][1:]
    with VideoReader(path) as reader:
        plan = look_at_keyframes(reader, KEYFRAMES, threading.Event(), lambda _: None)
        step = 1 / float(reader.info.frame_rate)
    if plan is None:
        raise SystemExit(f"{path}: keyframes too close together for a keyframe scan")
    rule = KEYFRAMES.keyframes
    rows = []
    for index, group in enumerate(plan.groups):
        look = plan.looks.get(scan._key(group.start))
        after = plan.looks.get(scan._key(group.end))
        rows.append(
            GroupRow(
                start=round(group.start, 3),
                end=round(group.end, 3),
                frames=len(group.sizes) + 1,
                intra=group.intra,
                clock=group.clock,
                interval_share=group.interval_share,
                difference=look.difference if look else None,
                colour=look.colour_distance if look else None,
                brightness=(
                    look.brightness if look else None,
                    after.brightness if after else None,
                ),
                motion=(_motion(look), _motion(after)),
                spike=group.spike,
                keyed_late=scan._keyed_late(group, rule),
                froze=scan._froze(group, rule),
                decision=_decision(plan.steps, group.start, group.end),
                cuts_inside=[
                    round(cut, 3)
                    for cut in cuts
                    if group.start + step / 2 < cut < group.end - step / 2
                ],
                cut_on_end=index < len(plan.groups) - 1
                and any(abs(cut - group.end) <= step / 2 for cut in cuts),
            )
        )
    return rows


def _motion(look: scan.KeyframeLook | None) -> float | None:
    return float(np.mean(look.motion)) if look is not None and look.motion else None


def _decision(steps: list[Stretch | KeyframeCut], start: float, end: float) -> str:
    if any(isinstance(s, KeyframeCut) and abs(s.time - end) < 1e-6 for s in steps):
        return "cut"
    for s in steps:
        if isinstance(s, Stretch) and s.start - 1e-6 <= start and end <= s.end + 1e-6:
            if s.quiet_from is not None and start >= s.quiet_from - 1e-6:
                return f"decode, quiet from {s.quiet_from:.2f}"
            return "decode"
    return "skip"


def _number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _line(row: GroupRow) -> str:
    facts = [
        f"{row.start:8.3f}-{row.end:8.3f}",
        f"{row.frames:4d} fr",
        f"intra {'?' if row.intra is None else row.intra}",
        "clock" if row.clock else "     ",
        f"share {_number(row.interval_share, 2)}",
        f"diff {_number(row.difference)}",
        f"colour {_number(row.colour, 2)}",
        f"bright {_number(row.brightness[0])}/{_number(row.brightness[1])}",
        f"motion {_number(row.motion[0])}/{_number(row.motion[1])}",
        f"spike {row.spike:.1f}",
        "late" if row.keyed_late else "",
        "froze" if row.froze else "",
        row.decision,
        f"cuts {row.cuts_inside}" if row.cuts_inside else "",
        "cut on end" if row.cut_on_end else "",
        "MISS" if row.miss else "",
        "FALSE CUT" if row.false_cut else "",
    ]
    return "  ".join(fact for fact in facts if fact)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("videos", nargs="+", type=Path)
    parser.add_argument("--json", action="store_true", help="one JSON object per video")
    parser.add_argument("--all", action="store_true", help="every group, not only misses")
    args = parser.parse_args()
    for path in args.videos:
        rows = group_rows(path)
        if args.json:
            print(json.dumps({"video": str(path), "groups": [asdict(row) for row in rows]}))
            continue
        misses = [index for index, row in enumerate(rows) if row.miss or row.false_cut]
        print(f"{path.name}: {len(rows)} groups, {len(misses)} with a missed or false cut")
        shown = (
            range(len(rows))
            if args.all
            else sorted({near for index in misses for near in range(index - 1, index + 2)})
        )
        for index in shown:
            if 0 <= index < len(rows):
                print("  " + _line(rows[index]))


if __name__ == "__main__":
    main()
