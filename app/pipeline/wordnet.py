"""Offline WordNet for METEOR: find NLTK's copy or build one from Debian's ``wordnet-base``.

NLTK only reads corpora under a directory on ``nltk.data.path`` and refuses symlinked or
hard-linked files, so the Debian files are copied (about 36 MB) into an NLTK data layout,
``<data dir>/corpora/wordnet/``, next to the ``lexnames`` file that Debian does not ship.

Run ``python -m app.pipeline.wordnet [TARGET_DIR]`` to build it ahead of time.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import nltk.data
from nltk.corpus.reader.wordnet import WordNetCorpusReader

from app.errors import WordNetMissing

logger = logging.getLogger(__name__)

#: Where Debian's ``wordnet-base`` and ``wordnet-sense-index`` packages put the database.
DEBIAN_WORDNET_DIR = Path("/usr/share/wordnet")

#: The Debian files NLTK's reader opens (``lexnames`` is written, not copied).
WORDNET_FILES = (
    "cntlist.rev",
    "index.sense",
    "index.adj",
    "index.adv",
    "index.noun",
    "index.verb",
    "data.adj",
    "data.adv",
    "data.noun",
    "data.verb",
    "adj.exc",
    "adv.exc",
    "noun.exc",
    "verb.exc",
)

#: The 45 WordNet 3.0 lexicographer files, in file-number order, with their syntactic
#: category (1 noun, 2 verb, 3 adjective, 4 adverb), as listed in lexnames(5WN).
LEXNAMES = (
    ("adj.all", 3),
    ("adj.pert", 3),
    ("adv.all", 4),
    ("noun.Tops", 1),
    ("noun.act", 1),
    ("noun.animal", 1),
    ("noun.artifact", 1),
    ("noun.attribute", 1),
    ("noun.body", 1),
    ("noun.cognition", 1),
    ("noun.communication", 1),
    ("noun.event", 1),
    ("noun.feeling", 1),
    ("noun.food", 1),
    ("noun.group", 1),
    ("noun.location", 1),
    ("noun.motive", 1),
    ("noun.object", 1),
    ("noun.person", 1),
    ("noun.phenomenon", 1),
    ("noun.plant", 1),
    ("noun.possession", 1),
    ("noun.process", 1),
    ("noun.quantity", 1),
    ("noun.relation", 1),
    ("noun.shape", 1),
    ("noun.state", 1),
    ("noun.substance", 1),
    ("noun.time", 1),
    ("verb.body", 2),
    ("verb.change", 2),
    ("verb.cognition", 2),
    ("verb.communication", 2),
    ("verb.competition", 2),
    ("verb.consumption", 2),
    ("verb.contact", 2),
    ("verb.creation", 2),
    ("verb.emotion", 2),
    ("verb.motion", 2),
    ("verb.perception", 2),
    ("verb.possession", 2),
    ("verb.social", 2),
    ("verb.stative", 2),
    ("verb.weather", 2),
    ("adj.ppl", 3),
)

_INSTALL_HINT = (
    "Install it with `apt-get install wordnet-base wordnet-sense-index` (then it is set up "
    "automatically, or ahead of time with `python -m app.pipeline.wordnet`), or with "
    "`python -c \"import nltk; nltk.download('wordnet')\"`."
)


def default_data_dir() -> Path:
    """Where WordNet is built when no data directory is given.

    Returns:
        ``$XDG_CACHE_HOME/audio-describer/nltk_data`` (``~/.cache`` when unset).
    """
    cache = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(cache).expanduser() / "audio-describer" / "nltk_data"


def install_wordnet(target_dir: Path, source_dir: Path = DEBIAN_WORDNET_DIR) -> Path:
    """Build an NLTK WordNet corpus from a Debian-style WordNet 3.0 database.

    The files are copied into a staging directory and renamed into place, so a reader
    never sees a half-built corpus; an existing ``<target_dir>/corpora/wordnet`` is
    replaced.

    Args:
        target_dir: NLTK data directory to build into; created if missing.
        source_dir: Directory holding ``data.noun``, ``index.sense`` and the other files.

    Returns:
        The corpus directory, ``<target_dir>/corpora/wordnet``.

    Raises:
        WordNetMissing: ``source_dir`` lacks a needed file.
        OSError: The target directory cannot be written.
    """
    if not source_dir.is_dir():
        raise WordNetMissing(f"No WordNet database in {source_dir}. {_INSTALL_HINT}")
    missing = [name for name in WORDNET_FILES if not (source_dir / name).is_file()]
    if missing:
        raise WordNetMissing(
            f"WordNet files {', '.join(missing)} not found in {source_dir}. {_INSTALL_HINT}"
        )
    # Explicit modes: NLTK refuses a data directory that another account could write to.
    target_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    corpora = target_dir / "corpora"
    corpora.mkdir(mode=0o755, exist_ok=True)
    corpus = corpora / "wordnet"
    staging = Path(tempfile.mkdtemp(prefix=".wordnet-", dir=corpora))
    try:
        for name in WORDNET_FILES:
            shutil.copyfile(source_dir / name, staging / name)
        lines = (f"{i:02d}\t{name}\t{pos}\n" for i, (name, pos) in enumerate(LEXNAMES))
        (staging / "lexnames").write_text("".join(lines), encoding="utf-8")
        # Likewise for the files, whatever the umask made of them.
        for path in staging.iterdir():
            path.chmod(0o644)
        staging.chmod(0o755)
        if corpus.exists():
            shutil.rmtree(corpus)
        staging.rename(corpus)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.debug("Built WordNet corpus %s from %s", corpus, source_dir)
    return corpus


def _find_corpus(paths: list[str]) -> nltk.data.PathPointer | None:
    """Locate ``corpora/wordnet`` (unzipped or zipped) the way NLTK's lazy loader does."""
    for resource in ("corpora/wordnet.zip/wordnet/", "corpora/wordnet"):
        try:
            return nltk.data.find(resource, paths=paths)
        except LookupError:
            continue
    return None


def _register(data_dir: Path) -> str:
    """Put ``data_dir`` on ``nltk.data.path``: NLTK reads corpora only under those roots."""
    entry = str(data_dir.resolve())
    if entry not in nltk.data.path:
        nltk.data.path.append(entry)
    return entry


class EnglishWordNetReader(WordNetCorpusReader):
    """NLTK's reader without Open Multilingual Wordnet: METEOR looks up English only.

    NLTK's reader maps its synsets to those of the corpus called ``wordnet`` for OMW's
    tables (``map_wn``), and its version check compares "3.0" with that name, so it reads
    ``index.sense`` twice every time: over half of the load (about 5 of 9 CPU s here).
    Without OMW the map has no use.
    """

    def map_wn(self, version: str = "wordnet") -> None:
        return None


def _read(root: nltk.data.PathPointer) -> WordNetCorpusReader:
    """Open the corpus at ``root``; turn an unreadable one into ``WordNetMissing``."""
    try:
        with warnings.catch_warnings():
            # Without Open Multilingual Wordnet data the reader warns that the multilingual
            # functions are unavailable; METEOR only needs English, and the pytest
            # warnings-as-errors setting would turn this expected notice into a failure.
            warnings.filterwarnings(
                "ignore",
                message="The multilingual functions are not available",
                category=UserWarning,
            )
            return EnglishWordNetReader(root, None)
    except (OSError, ValueError, LookupError) as exc:
        raise WordNetMissing(f"WordNet at {root} cannot be read ({exc}). {_INSTALL_HINT}") from exc


def load_wordnet(
    data_dir: Path | None = None, *, source_dir: Path = DEBIAN_WORDNET_DIR
) -> WordNetCorpusReader:
    """Load WordNet, building it from the Debian packages when NLTK has none.

    Looks in ``nltk.data.path`` first, then in ``data_dir``. When neither holds WordNet but
    the Debian files are installed, builds it into ``data_dir`` and logs that it did. The
    reader is cached per directory for the life of the process: loading takes seconds.

    Args:
        data_dir: NLTK data directory to search and build into; defaults to
            :func:`default_data_dir`. It is added to ``nltk.data.path``, which NLTK
            requires before it reads a corpus there.
        source_dir: Debian WordNet database to build from.

    Returns:
        A WordNet reader for ``meteor_score(..., wordnet=...)``.

    Raises:
        WordNetMissing: No WordNet is installed, or the one found cannot be read or built.
    """
    data_dir = default_data_dir() if data_dir is None else data_dir
    return _load_cached(data_dir.expanduser().resolve(), source_dir)


# Unbounded on purpose: an evicted reader would be collected with its data files still open.
@functools.cache
def _load_cached(data_dir: Path, source_dir: Path) -> WordNetCorpusReader:
    """Find or build WordNet and open it; see :func:`load_wordnet`."""
    entry = _register(data_dir)
    root = _find_corpus(list(nltk.data.path))
    if root is None:
        if not (source_dir / "data.noun").is_file():
            raise WordNetMissing(
                f"WordNet not found in the NLTK data path ({', '.join(map(str, nltk.data.path))}) "
                f"nor in {source_dir}. {_INSTALL_HINT}"
            )
        try:
            install_wordnet(data_dir, source_dir)
        except OSError as exc:
            raise WordNetMissing(
                f"Cannot build WordNet in {data_dir} ({exc}). Run "
                "`python -m app.pipeline.wordnet TARGET_DIR` with a writable TARGET_DIR "
                "and pass that directory as the WordNet data directory."
            ) from exc
        logger.info("WordNet was not installed for NLTK; built it in %s from %s", entry, source_dir)
        root = _find_corpus([entry])
        if root is None:
            raise WordNetMissing(f"WordNet built in {data_dir} cannot be found. {_INSTALL_HINT}")
    reader = _read(root)
    logger.info("Loaded WordNet from %s", root)
    return reader


def main(argv: Sequence[str] | None = None) -> int:
    """Build WordNet from Debian's files, check that WordNet loads, and print the corpus path.

    Args:
        argv: Command-line arguments without the program name (``sys.argv[1:]`` if None).

    Returns:
        The process exit status.
    """
    parser = argparse.ArgumentParser(
        prog="python -m app.pipeline.wordnet",
        description="Build an NLTK WordNet corpus from Debian's wordnet-base files.",
    )
    parser.add_argument(
        "target_dir",
        nargs="?",
        type=Path,
        default=default_data_dir(),
        help="NLTK data directory to build into (default: %(default)s)",
    )
    parser.add_argument(
        "--source-dir",
        type=Path,
        default=DEBIAN_WORDNET_DIR,
        help="directory with the WordNet 3.0 database files (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    try:
        corpus = install_wordnet(args.target_dir, args.source_dir)
        # Load it the way the service will (a WordNet already on NLTK's path comes first);
        # the cached reader keeps its data files open for the rest of the process.
        if not load_wordnet(args.target_dir).synsets("walk"):
            raise WordNetMissing(f"WordNet in {corpus} has no entries. {_INSTALL_HINT}")
    except (WordNetMissing, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(corpus)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    raise SystemExit(main())
