"""Text normalization for comparing a take's transcript with its text (both sides the same way).

jiwer's transforms do case, punctuation and whitespace; num2words spells digits out (the recognizer
hears "twelve", the manuscript says "12"); nonverbal cues like (laughs) and Dia's [S1]/[S2] tags
are removed (they are not words to hear); lexicon respellings are mapped back to the written word,
so "Kair-win" heard for "Caerwyn" counts as right.
"""
from __future__ import annotations

import re

import jiwer
from num2words import num2words

_TAGS_AND_CUES = re.compile(r"\[S\d+\]|\([^()]*\)")
_NUMBER = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)(st|nd|rd|th)?(?![\w])")

_CLEAN = jiwer.Compose([
    jiwer.ToLowerCase(),
    # punctuation goes, except apostrophes inside words ("i'm", "keeper's" are dictionary words)
    jiwer.SubstituteRegexes({r"[\u2019\u2018]": "'", r"[^\w\s']": " ", r"(?<!\w)'|'(?!\w)": " "}),
    jiwer.RemoveMultipleSpaces(),
    jiwer.Strip(),
])


def _spell_numbers(text: str) -> str:
    def one(m: re.Match) -> str:
        number, suffix = m.group(1), m.group(2)
        try:
            if suffix:
                return num2words(int(number), to="ordinal")
            return num2words(float(number) if "." in number else int(number))
        except (ValueError, OverflowError):
            return number
    return _NUMBER.sub(one, text)


def words(text: str, respellings: dict[str, str] | None = None) -> list[str]:
    """Normalized words of ``text``: tags and cues removed, numbers spelled out, lower case, no
    punctuation (hyphens split words: "Kair-win" -> "kair win"); then every respelling's words are
    replaced by its written word's (``respellings`` is the project lexicon: written -> respelled)."""
    text = _spell_numbers(_TAGS_AND_CUES.sub(" ", text)).replace("-", " ")
    out = _CLEAN(text).split()
    for written, respelled in (respellings or {}).items():
        said, meant = words(respelled), words(written)
        if said and said != meant:
            out = _replace_run(out, said, meant)
    return out


def _replace_run(seq: list[str], run: list[str], by: list[str]) -> list[str]:
    out, i, n = [], 0, len(run)
    while i < len(seq):
        if seq[i:i + n] == run:
            out += by
            i += n
        else:
            out.append(seq[i])
            i += 1
    return out
