"""The ``nllb`` translator kind: Meta's NLLB-200 (e.g. ``facebook/nllb-200-distilled-600M``,
model type ``m2m_100``), one model for 200 languages chosen by a FLORES-200 language token.

The viewer's ISO 639-1 code becomes the FLORES-200 code through ISO 639-3 (``ru`` →
``rus_Cyrl``, the one ``rus_*`` token of the tokenizer); the macrolanguages FLORES-200 names
by one member are in :data:`FLORES_MEMBERS`. The token is forced as the first generated one.
"""

from __future__ import annotations

import re

import pycountry
from transformers import AutoTokenizer
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from app.errors import ModelLoadError
from app.models.hub import ModelSource
from app.models.translators import TranslateOptions, TranslatorKind
from app.models.translators.marian import Seq2SeqTranslator, load_seq2seq

#: FLORES-200 codes of ISO 639-1 macrolanguages, which FLORES-200 names by one member
#: (Arabic by Modern Standard Arabic, Chinese by its simplified script, ...).
FLORES_MEMBERS = {
    "ar": "arb_Arab",
    "az": "azj_Latn",
    "et": "est_Latn",
    "fa": "pes_Arab",
    "lv": "lvs_Latn",
    "mn": "khk_Cyrl",
    "ms": "zsm_Latn",
    "ne": "npi_Deva",
    "no": "nob_Latn",
    "ps": "pbt_Arab",
    "sq": "als_Latn",
    "sw": "swh_Latn",
    "uz": "uzn_Latn",
    "yi": "ydd_Hebr",
    "zh": "zho_Hans",
}


def flores_code(tokenizer: PreTrainedTokenizerBase, language: str, name: str) -> str:
    """The tokenizer's FLORES-200 token for an ISO 639-1 language.

    Raises:
        ModelLoadError: The tokenizer has no token, or several, for the language.
    """
    vocabulary = tokenizer.get_vocab()
    if language in FLORES_MEMBERS:
        pattern = FLORES_MEMBERS[language]
        found = [pattern] if pattern in vocabulary else []
    else:
        entry = pycountry.languages.get(alpha_2=language)
        prefix = entry.alpha_3 if entry is not None else language
        pattern = f"{prefix}_<Script>"
        found = sorted(t for t in vocabulary if re.fullmatch(rf"{prefix}_[A-Z][a-z]{{3}}", t))
    if len(found) != 1:
        looked = pattern if not found else ", ".join(found)
        raise ModelLoadError(
            f"{name!r} cannot write {language!r}: its tokenizer has "
            f"{'no FLORES-200 language token' if not found else 'several tokens'} for it "
            f"({'looked for' if not found else 'found'} {looked}). Choose a language it "
            "knows, or another translator."
        )
    return found[0]


def load(source: ModelSource, language: str, options: TranslateOptions) -> Seq2SeqTranslator:
    """Load an NLLB model and its tokenizer, set to translate English into ``language``.

    Errors of transformers, safetensors and torch pass through;
    :func:`app.models.translators.load_translator` turns them into a ModelLoadError.
    """
    tokenizer = AutoTokenizer.from_pretrained(source.name_or_path, **source.pretrained_kwargs())
    # Both codes before the weights load: a language it cannot write fails at once.
    target = flores_code(tokenizer, language, source.name_or_path)
    tokenizer.src_lang = flores_code(tokenizer, "en", source.name_or_path)
    model = load_seq2seq(source, options)
    forced = {"forced_bos_token_id": tokenizer.convert_tokens_to_ids(target)}
    return Seq2SeqTranslator(
        model, tokenizer, language, options, name=source.name_or_path, generate=forced
    )


NLLB = TranslatorKind(model_types=("m2m_100",), load=load)
