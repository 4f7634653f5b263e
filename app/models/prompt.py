"""The one prompt of the prompt-driven captioners (local vision-language models and remote
chat endpoints): audio-description style rules, the word budget, the viewer's language, the
dialogue around the pause and the last descriptions, filled into a template the user can
replace (``DESCRIBER_PROMPT_FILE``).

A template is text with ``$name`` placeholders (Python's ``string.Template``; ``$$`` is a
literal dollar sign):

* ``$language``: the viewer's language in English ("Russian"); ``$language_code``: its ISO
  639-1 code ("ru").
* ``$max_words``: the most words the description may have.
* ``$frames``: how many frames of the scene come with the prompt.
* ``$dialogue``: the dialogue lines around the pause, one per line with a leading "- ", or
  "(none)".
* ``$previous``: the last descriptions, oldest first, one per line with a leading "- ", or
  "(none)".
"""

from __future__ import annotations

import functools
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from app.errors import DescriberError
from app.models.base import CaptionRequest

#: The placeholders a template may use.
PLACEHOLDERS = ("language", "language_code", "max_words", "frames", "dialogue", "previous")

#: Word budget used in the prompt when a request names none.
DEFAULT_MAX_WORDS = 20
#: Most tokens of a description when the options name none.
MAX_NEW_TOKENS = 200
#: Tokens to allow per word of budget: sub-word vocabularies take two or three tokens for a
#: Russian word; the pipeline trims the text to the budget at a word boundary anyway.
TOKENS_PER_WORD = 4


def token_limit(requests: Sequence[CaptionRequest], most: int | None) -> int:
    """Tokens to generate for ``requests`` answered together: enough for the largest word
    budget, at most ``most`` (None: ``MAX_NEW_TOKENS``)."""
    cap = most or MAX_NEW_TOKENS
    budgets = [r.max_words or DEFAULT_MAX_WORDS for r in requests] or [DEFAULT_MAX_WORDS]
    return min(cap, max(budgets) * TOKENS_PER_WORD + 8)


DEFAULT_TEMPLATE = """\
You write audio description for blind and partially sighted viewers of a film. The \
$frames image(s) are frames of one shot, in time order. Describe what a viewer sees in \
this shot, to be read aloud in a pause of the dialogue.

Rules:
- Write in $language, at most $max_words words, as one or two short sentences.
- Present tense, third person. Say who does what, where; name visible actions, \
expressions, clothing, places and important objects.
- Describe only what is visible. Do not interpret, guess intentions or feelings that are \
not shown, or judge.
- Never say "the image shows", "we see", "in this frame", "the camera" or the like.
- Read out important text on screen (signs, titles, messages).
- Do not repeat what the previous descriptions already said; add what is new.

Dialogue around this pause:
$dialogue

Previous descriptions:
$previous

Answer with the description only."""


class PromptError(DescriberError):
    """A prompt template cannot be read or uses placeholders that do not exist."""


@functools.cache
def language_name(code: str) -> str:
    """The English name of an ISO 639-1 language code ("ru" -> "Russian").

    Raises:
        PromptError: No language has this code.
    """
    import pycountry

    language = pycountry.languages.get(alpha_2=code)
    if language is None:
        raise PromptError(
            f"{code!r} is not an ISO 639-1 language code; use two letters such as en or ru"
        )
    name: str = language.name
    return name


@dataclass(frozen=True)
class PromptBuilder:
    """Turns a caption request into the text that goes with the frames."""

    template: str = DEFAULT_TEMPLATE
    """Text with ``$name`` placeholders (see the module's docstring)."""

    def __post_init__(self) -> None:
        parsed = string.Template(self.template)
        if not parsed.is_valid():
            raise PromptError(
                "the prompt template has a '$' that starts no placeholder; write $$ for a "
                "dollar sign"
            )
        unknown = sorted(set(parsed.get_identifiers()) - set(PLACEHOLDERS))
        if unknown:
            raise PromptError(
                f"the prompt template uses unknown placeholders {', '.join(unknown)}; "
                f"the known ones are {', '.join(PLACEHOLDERS)}"
            )

    @classmethod
    def for_template(cls, template: str | None) -> PromptBuilder:
        """A builder for ``template``; None: the default template."""
        return cls() if template is None else cls(template)

    @classmethod
    def from_file(cls, path: Path) -> PromptBuilder:
        """Read a template from a UTF-8 text file.

        Raises:
            PromptError: The file cannot be read or the template is not valid.
        """
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PromptError(f"cannot read the prompt template {path}: {exc}") from exc
        try:
            return cls(text)
        except PromptError as exc:
            raise PromptError(f"{path}: {exc}") from exc

    def build(self, request: CaptionRequest, frames: int) -> str:
        """The prompt for one request that comes with ``frames`` images."""
        return string.Template(self.template).substitute(
            language=language_name(request.language),
            language_code=request.language,
            max_words=request.max_words or DEFAULT_MAX_WORDS,
            frames=frames,
            dialogue=_bullets(request.dialogue),
            previous=_bullets(request.previous),
        )


def _bullets(lines: Sequence[str]) -> str:
    return "\n".join(f"- {line}" for line in lines) if lines else "(none)"
