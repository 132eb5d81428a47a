"""The planner keeps the manuscript's own wording next to the lexicon-respelled text Dia reads:
``Turn.display_text`` / ``PlannedSegment.display_text`` feed the captions, ``text`` stays what Dia gets."""
from __future__ import annotations

import dataclasses
import re

from dia_core.script.planner import _display_pieces, compile_lexicon, compile_lexicon_spans, split_clauses, split_sentences
from tests.dia_core.script import test_planner as _planner_tests
from tests.dia_core.script.test_planner import TAG_RE, plan_text

project = _planner_tests.project   # the planner tests' module fixture (a name, not an unused import)


def _words(seg_text: str) -> list[str]:
    return TAG_RE.sub("", seg_text).split()


def test_respelled_for_dia_original_for_display(project):
    # lexicon of the shared fixture: {Dr: Doctor, Qx: Quix}
    plan = plan_text(project, "# The Harbour\n\nDr Hale met Qx at the pier. It rained.\n\nBEN: Qx? Is that you?\n")
    (seg,) = plan.chapters[0].segments
    assert seg.text == "[S1] The Harbour. Doctor Hale met Quix at the pier. It rained. [S2] Quix? Is that you?"
    assert seg.display_text == "[S1] The Harbour. Dr Hale met Qx at the pier. It rained. [S2] Qx? Is that you?"
    assert [(t.character, t.text, t.display_text) for t in seg.turns] == [
        ("Narrator", "The Harbour. Doctor Hale met Quix at the pier. It rained.",
         "The Harbour. Dr Hale met Qx at the pier. It rained."),
        ("BEN", "Quix? Is that you?", "Qx? Is that you?")]
    j = seg.to_json()
    assert j["text"] == seg.text and j["display_text"] == seg.display_text
    assert j["turns"][1]["display_text"] == "Qx? Is that you?"


def test_display_text_follows_sentence_splits_across_segments(project):
    # one long paragraph: its sentences land in several segments; the lexicon's "Dr." -> "Doctor."
    # also makes the planner cut a sentence the original text would not have cut.
    sents = [f"Qx walked past harbour post number {i} while Dr. Hale watched the boats come in." for i in range(12)]
    original = " ".join(sents)
    plan = plan_text(dataclasses.replace(project, normalize=False), f"# Walk\n\n{original}\n")  # digits as written
    segs = plan.chapters[0].segments
    assert len(segs) >= 3
    for s in segs:
        assert "Quix" in s.text and "Doctor" in s.text and "Qx" not in s.text
        assert "Qx" in s.display_text and "Dr." in s.display_text and "Quix" not in s.display_text
        assert "Doctor" not in s.display_text
        assert len(_words(s.text)) == len(_words(s.display_text))  # the lexicon maps word for word here
        for t in s.turns:
            assert t.display_text.replace("Qx", "Quix").replace("Dr", "Doctor") == t.text
    # lossless: the display texts of all segments, in order, are the manuscript words
    assert " ".join(" ".join(_words(s.display_text)) for s in segs) == "Walk. " + original


def test_over_long_sentence_split_at_clauses_and_words(project):
    clause = "Qx and Dr Hale walked along the grey harbour wall beside the sleeping boats"
    sentence = ", ".join([clause] * 8) + "."
    plan = plan_text(project, f"# Long\n\n{sentence}\n")
    segs = plan.chapters[0].segments
    assert len(segs) >= 2 and plan.warnings
    assert " ".join(" ".join(_words(s.display_text)) for s in segs) == "Long. " + sentence
    assert " ".join(" ".join(_words(s.text)) for s in segs) == \
        "Long. " + sentence.replace("Qx", "Quix").replace("Dr", "Doctor")


def test_ids_and_text_do_not_depend_on_display(project):
    manuscript = "# A\n\nDr Hale met Qx. It rained.\n\nANNA: Hello, Qx.\n"
    plan = plan_text(project, manuscript)
    plain = plan_text(project, manuscript.replace("Dr", "Doctor").replace("Qx", "Quix"))
    assert [(s.id, s.text) for s in plan.segments] == [(s.id, s.text) for s in plain.segments]
    assert [s.display_text for s in plain.segments] == [s.text for s in plain.segments]
    assert [s.display_text for s in plan.segments] != [s.text for s in plan.segments]


def test_display_pieces_with_awkward_replacements():
    lexicon = {"Caerwyn": "Kair-win", "um": "", "NASA": "nasa, the  agency", "Mr. X": "Mister Ex. Yes"}
    apply, spans = compile_lexicon(lexicon), compile_lexicon_spans(lexicon)
    original = "um Mr. X came to Caerwyn. Then um Caerwyn again, said NASA people."
    text = apply(original)
    assert text == "Mister Ex. Yes came to Kair-win. Then Kair-win again, said nasa, the agency people."
    for pieces in (split_sentences(text),
                   [c for s in split_sentences(text) for c in split_clauses(s)],
                   [w for s in split_sentences(text) for c in split_clauses(s) for w in c.split(" ")]):
        shown = _display_pieces(original, spans(original), pieces)
        assert len(shown) == len(pieces)
        # together the pieces give back the original exactly; a respelling never leaks through
        assert " ".join(d for d in shown if d) == original
        assert not any(re.search(r"Kair|Mister|nasa", d) for d in shown)
    # a cut inside a replacement gives the whole original phrase to the piece holding its start
    assert _display_pieces(original, spans(original), split_sentences(text))[:2] == ["um Mr. X", "came to Caerwyn."]


def test_no_lexicon_display_is_text():
    assert compile_lexicon_spans({})("a b") == [(0, 1, True), (2, 3, True)]
