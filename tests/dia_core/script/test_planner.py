"""Segment planner: golden plans per manuscript format, and hypothesis properties over generated
manuscripts (budgets, lossless text, chapter order, id stability)."""
from __future__ import annotations

import dataclasses
import hashlib
import math
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dia_core.errors import InputError
from dia_core.script.manuscript import Casting, parse_text
from dia_core.params import FRAME_RATE, MAX_DECODER_POSITIONS, MAX_DELAY, MAX_TEXT_BYTES
from dia_core.script.planner import (Plan, dia_text, plan_chapters, plan_project, split_clauses, split_sentences)
from dia_core.script.project import load_project, prompt_frames_for

REPO = Path(__file__).resolve().parents[3]
TAG_RE = re.compile(r"\[S[12]\] ?")

LONG_TRANSCRIPT = ("This is a deliberately long reference transcript for the budget tests, so that the "
                   "prompt takes a large share of the thousand and twenty four bytes Dia can read, and "
                   "the planner has to cut segments shorter whenever this voice shares a segment with "
                   "another voice that also carries a prompt of its own words.")

MANIFEST = f"""\
title: Property Book
author: Tester
manuscript: book.md
voices:
  narr:
    reference: voices/narr.wav
    transcript: The narrator speaks in a calm and even voice.
  anna: {{seed: 1}}
  ben: {{seed: 2, chars_per_second: 11}}
  cleo:
    reference: voices/cleo.wav
    transcript: "{LONG_TRANSCRIPT}"
    sampling: {{max_new_tokens: 1800}}
characters: {{ANNA: anna, BEN: ben, CLEO: cleo, DOC: narr}}
narrator_voice: narr
raw_slots: {{S1: anna, S2: ben}}
lexicon: {{Dr: Doctor, Qx: Quix}}
"""


def _wav(path: Path, seconds: float):
    """A tone at speaking level (an all-zero clip is refused as digital silence)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * 8000)) / 8000
    sf.write(str(path), (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 8000, subtype="PCM_16")


@pytest.fixture(scope="module")
def project():
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        (root / "book.md").write_text("Placeholder.\n")
        _wav(root / "voices" / "narr.wav", 7.0)
        _wav(root / "voices" / "cleo.wav", 12.0)
        (root / "project.yaml").write_text(MANIFEST)
        yield load_project(root / "project.yaml")


def plan_text(project, text, *, file="book.md") -> Plan:
    chapters, warnings = parse_text(text, Casting.from_project(project), file=file)
    return plan_chapters(project, chapters, warnings)


def seg_rows(plan):
    return [[(s.text, s.slots["S1"], s.slots["S2"], s.boundary) for s in c.segments] for c in plan.chapters]


# ------------------------------------------------------------------ invariants checked on every plan

def check_segment(project, seg):
    voices = project.voices
    s1 = voices[seg.slots["S1"]]
    s2 = voices[seg.slots["S2"]] if seg.slots["S2"] else None
    # prompt transcript in slot order, only for slots in use
    expected_prompt = "[S1] " + s1.prompt_transcript + (" [S2] " + s2.prompt_transcript if s2 else "")
    assert seg.prompt_text == expected_prompt
    # hard budgets
    assert len(dia_text(seg.prompt_text, seg.text).encode("utf-8")) <= MAX_TEXT_BYTES
    assert len((seg.prompt_text + seg.text).encode("utf-8")) < MAX_TEXT_BYTES
    pf = prompt_frames_for(s1) + (prompt_frames_for(s2) if s2 else 0)
    positions = 1 + pf + math.ceil(seg.est_seconds * FRAME_RATE) + MAX_DELAY
    assert positions <= min(s1.sampling.max_new_tokens, MAX_DECODER_POSITIONS)
    assert seg.decoder_positions == positions and seg.prompt_frames == pf
    # tags: start with [S1], alternate, S2 only when a second voice holds the slot
    tags = re.findall(r"\[S[12]\]", seg.text)
    assert seg.text.startswith("[S1] ") and tags
    assert all(a != b for a, b in zip(tags, tags[1:]))
    assert ("[S2]" in tags) == (s2 is not None)
    # turns agree with slots and text
    assert {t.voice for t in seg.turns} == {v for v in seg.slots.values() if v}
    for t in seg.turns:
        assert seg.slots[t.slot] == t.voice
    assert " ".join(t.text for t in seg.turns) == TAG_RE.sub("", seg.text)
    assert seg.seed == s1.seed and seg.sampling == s1.sampling
    assert seg.boundary in ("chapter_start", "scene", "paragraph", "turn", "sentence")
    assert re.fullmatch(r"[0-9a-f]{16}", seg.id)
    assert seg.est_seconds > 0


def spoken(seg) -> str:
    return TAG_RE.sub("", seg.text)


# ------------------------------------------------------------------ golden plans per format

def test_golden_markdown_narration(project):
    plan = plan_text(project, "# The Harbour\n\nDr Hale met Qx at the pier. It rained.\n\n"
                              "Later they walked home.\n")
    assert [c.id for c in plan.chapters] == ["chapter-01"]
    (seg,) = plan.chapters[0].segments
    assert seg.text == "[S1] The Harbour. Doctor Hale met Quix at the pier. It rained. Later they walked home."
    assert seg.prompt_text == "[S1] The narrator speaks in a calm and even voice."
    assert seg.slots == {"S1": "narr", "S2": None}
    assert seg.boundary == "chapter_start" and (seg.source.file, seg.source.line) == ("book.md", 1)
    assert seg.est_seconds == round(sum(len(p) for p in (
        "The Harbour.", "Doctor Hale met Quix at the pier.", "It rained.", "Later they walked home.")) / 14, 3)
    key = "\x1f".join(("narr", "", seg.prompt_text, seg.text, "0"))
    assert seg.id == hashlib.sha256(key.encode()).hexdigest()[:16]
    j = plan.to_json()
    assert list(j) == ["project_title", "chapters", "warnings"]
    c = j["chapters"][0]
    assert {"id", "title", "segments"} <= set(c)
    s = c["segments"][0]
    assert {"id", "text", "prompt_text", "slots", "est_seconds", "source"} <= set(s)
    assert s["slots"] == {"S1": "narr", "S2": None} and s["source"] == {"file": "book.md", "line": 1}


def test_golden_dialogue_two_slots(project):
    plan = plan_text(project, "ANNA: Are you coming to the harbour tonight?\nBEN: Only if the rain stops.\n"
                              "ANNA: It never stops here.\n")
    (seg,) = plan.chapters[0].segments
    assert seg.text == ("[S1] Are you coming to the harbour tonight? [S2] Only if the rain stops. "
                        "[S1] It never stops here.")
    assert seg.slots == {"S1": "anna", "S2": "ben"}
    cal = project.voices["anna"].calibration_text
    assert seg.prompt_text == f"[S1] {cal} [S2] {cal}"
    assert [(t.slot, t.character) for t in seg.turns] == [("S1", "ANNA"), ("S2", "BEN"), ("S1", "ANNA")]
    assert seg.seed == 1


def test_golden_ben_first_takes_slot_one(project):
    plan = plan_text(project, "BEN: I will speak first this time, thank you.\nANNA: Fine by me.\n")
    (seg,) = plan.chapters[0].segments
    assert seg.text == "[S1] I will speak first this time, thank you. [S2] Fine by me."
    assert seg.slots == {"S1": "ben", "S2": "anna"} and seg.seed == 2


def test_golden_raw_lines(project):
    # raw_slots maps [S1] -> anna, [S2] -> ben; a segment starting with ben puts ben in [S1]
    plan = plan_text(project, "[S2] Ben opens the raw script here. [S1] Anna answers him. (laughs)\n")
    (seg,) = plan.chapters[0].segments
    assert seg.text == "[S1] Ben opens the raw script here. [S2] Anna answers him. (laughs)"
    assert seg.slots == {"S1": "ben", "S2": "anna"}


def test_golden_same_voice_characters_share_a_tag(project):
    plan = plan_text(project, "The doctor cleared his throat before he spoke.\nDOC: Sit down, please.\n")
    (seg,) = plan.chapters[0].segments
    assert seg.text == "[S1] The doctor cleared his throat before he spoke. Sit down, please."
    assert [(t.slot, t.character) for t in seg.turns] == [("S1", "Narrator"), ("S1", "DOC")]


def test_golden_three_voices_never_share_a_segment(project):
    plan = plan_text(project, "ANNA: One.\nBEN: Two.\nANNA: Three.\n\nThe narrator adds a line.\n")
    assert seg_rows(plan) == [[("[S1] One. [S2] Two. [S1] Three.", "anna", "ben", "chapter_start"),
                               ("[S1] The narrator adds a line.", "narr", None, "paragraph")]]


def test_golden_scene_break_is_a_boundary(project):
    plan = plan_text(project, "# Night\n\nShort one.\n\n* * *\n\nShort two.\n")
    assert seg_rows(plan) == [[("[S1] Night. Short one.", "narr", None, "chapter_start"),
                               ("[S1] Short two.", "narr", None, "scene")]]


def test_golden_long_paragraph_splits_at_sentences(project):
    sentences = [f"Sentence number {w} is here and it has a few more words to read aloud." for w in
                 "one two three four five six seven eight nine ten".split()]
    plan = plan_text(project, " ".join(sentences) + "\n")
    segs = plan.chapters[0].segments
    assert len(segs) > 1
    assert all(s.boundary == "sentence" for s in segs[1:])
    assert all(project.segmenting.min_seconds <= s.est_seconds <= project.segmenting.max_seconds for s in segs)
    assert " ".join(spoken(s) for s in segs) == " ".join(sentences)
    assert plan.warnings == []


def test_golden_overlong_sentence_splits_at_clauses_with_warning(project):
    clause = "and the lamp kept turning over the dark and patient water of the bay"
    sentence = "It began, " + ", ".join([clause] * 8) + "."
    plan = plan_text(project, sentence + "\n")
    segs = plan.chapters[0].segments
    assert len(segs) >= 3
    assert " ".join(spoken(s) for s in segs) == sentence
    assert all(spoken(s).endswith(",") or spoken(s).endswith(".") for s in segs)
    assert len(plan.warnings) == 1 and plan.warnings[0].startswith("book.md:1: a sentence of")
    assert segs[0].warnings == plan.warnings


def test_golden_overlong_clause_splits_at_words(project):
    sentence = " ".join(["word"] * 150) + "."
    plan = plan_text(project, sentence + "\n")
    segs = plan.chapters[0].segments
    assert " ".join(spoken(s) for s in segs) == sentence
    assert all(s.est_seconds <= project.segmenting.max_seconds for s in segs)
    assert "at words" in plan.warnings[0]


def test_word_too_long_for_any_segment(project):
    with pytest.raises(InputError, match="cannot fit in one Dia generation") as ei:
        plan_text(project, "Fine.\n\n" + "x" * 2000 + "\n")
    assert (ei.value.file, ei.value.line) == ("book.md", 3)


def test_tight_voice_budget_is_respected(project):
    # cleo: 12 s prompt, 1800 max_new_tokens -> at most ~8 s of new audio per segment
    plan = plan_text(project, "CLEO: " + " ".join(["The tide is low and the boats are resting."] * 12) + "\n")
    segs = plan.chapters[0].segments
    assert len(segs) >= 6
    for s in segs:
        check_segment(project, s)
        assert s.decoder_positions <= 1800


def test_sentence_splitter():
    assert split_sentences("Dr. Hale met Mr. Brown. It was 5 p.m. on Friday! Was it? \"Yes.\" Then J. R. left.") == [
        "Dr. Hale met Mr. Brown.", "It was 5 p.m. on Friday!", "Was it?", "\"Yes.\"", "Then J. R. left."]
    assert split_sentences("one. two. Three") == ["one. two.", "Three"]
    assert split_clauses("a, b; c: d — e") == ["a,", "b;", "c:", "d", "— e"]


def test_example_projects_plan():
    for name in ("podcast-episode", "short-audiobook"):
        pr = load_project(REPO / "projects" / name / "project.yaml")
        plan = plan_project(pr)
        assert plan.warnings == []
        for c in plan.chapters:
            for s in c.segments:
                check_segment(pr, s)
        assert all(len(c.segments) >= 1 for c in plan.chapters)
    assert [c.id for c in plan.chapters] == ["chapter-01", "chapter-02", "chapter-03"]
    assert [c.id for c in plan_project(pr, chapters=[3, 1]).chapters] == ["chapter-01", "chapter-03"]
    with pytest.raises(InputError, match="chapter 4 does not exist"):
        plan_project(pr, chapters=[4])


def test_segment_ids_distinct_for_repeated_text(project):
    para = "The bell rang again over the water, slow and low, the same as every night before it."
    plan = plan_text(project, "\n\n".join([para] * 3) + "\n")
    segs = plan.chapters[0].segments
    assert len(segs) == 3 and len({s.id for s in segs}) == 3
    assert plan_text(project, "\n\n".join([para] * 3) + "\n").to_json() == plan.to_json()


# ------------------------------------------------------------------ generated manuscripts

WORDS = ("the harbour lamp keeper quietly water stone rope ferry morning café naïve 東京 it's "
         "Dr Qx over under between (laughs) (sighs) a an of to was were tide gulls").split()
CAPS = "It The She He They We Nobody Morning Later Dr Qx".split()
SPEAKERS = {"ANNA": "anna", "BEN": "ben", "CLEO": "cleo", "DOC": "narr"}
LEX = {"Dr": "Doctor", "Qx": "Quix"}


def _lex(token: str) -> str:
    core = token.rstrip(".,;!?")
    return LEX.get(core, core) + token[len(core):]


@st.composite
def sentences(draw, long=False):
    n = draw(st.integers(20, 90)) if long else draw(st.integers(1, 14))
    words = [draw(st.sampled_from(CAPS))] + [draw(st.sampled_from(WORDS)) for _ in range(n)]
    if draw(st.booleans()):
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(words) - 2))
            if not words[i].endswith(","):
                words[i] += ","
    return " ".join(words) + draw(st.sampled_from([".", ".", "?", "!"]))


@st.composite
def paragraphs(draw):
    kind = draw(st.sampled_from(["narration", "narration", "dialogue", "raw", "scene", "long"]))
    if kind == "scene":
        return "***", []
    if kind in ("narration", "long"):
        sents = draw(st.lists(sentences(long=kind == "long"), min_size=1, max_size=5))
        text = " ".join(sents)
        return text, text.split()
    if kind == "dialogue":
        lines, words = [], []
        for _ in range(draw(st.integers(1, 5))):
            name = draw(st.sampled_from(sorted(SPEAKERS)))
            s = " ".join(draw(st.lists(sentences(), min_size=1, max_size=3)))
            lines.append(f"{name}: {s}")
            words += s.split()
        return "\n".join(lines), words
    turns, words = [], []
    for _ in range(draw(st.integers(1, 4))):
        s = draw(sentences())
        turns.append(f"[{draw(st.sampled_from(['S1', 'S2']))}] {s}")
        words += s.split()
    return " ".join(turns), words


@st.composite
def manuscripts(draw):
    """(text, [(title, spoken words)]) for 1-3 chapters."""
    chapters = []
    out = []
    for ci in range(draw(st.integers(1, 3))):
        title = f"Chapter {ci + 1} {draw(st.sampled_from(['Tide', 'Qx', 'Lamp?']))}"
        paras = draw(st.lists(paragraphs(), min_size=1, max_size=7))
        if all(not w for _, w in paras):
            paras.append(("Closing words.", ["Closing", "words."]))
        heading_words = (title if title[-1] in ".!?…" else title + ".").split()
        words = heading_words + [w for _, ws in paras for w in ws]
        chapters.append((title, [_lex(w) for w in words]))
        out.append(f"# {title}\n\n" + "\n\n".join(p for p, _ in paras))
    return "\n\n".join(out) + "\n", chapters


PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                        HealthCheck.too_slow])


@PROPS
@given(manuscripts())
def test_property_budgets_text_and_order(project, ms):
    text, expected = ms
    project = dataclasses.replace(project, normalize=False)   # lossless as written ("Chapter 1" stays "1")
    plan = plan_text(project, text)
    # chapter order and count kept
    assert [c.title for c in plan.chapters] == [t for t, _ in expected]
    assert [c.id for c in plan.chapters] == [f"chapter-{i:02d}" for i in range(1, len(expected) + 1)]
    for c, (_, words) in zip(plan.chapters, expected):
        assert c.segments and c.segments[0].boundary == "chapter_start"
        for s in c.segments:
            check_segment(project, s)
        # lossless: drop the tags, join the segments -> the source words (lexicon applied), in order
        assert " ".join(spoken(s) for s in c.segments).split() == words
    json = plan.to_json()
    assert len(json["chapters"]) == len(expected)


@st.composite
def long_paragraph_chapters(draw):
    """Chapters of narration paragraphs each >= min_seconds, one paragraph edited."""
    n = draw(st.integers(3, 8))
    paras = []
    for i in range(n):
        # distinct paragraphs: identical segment texts share an occurrence counter (see planner)
        sents = [f"Paragraph {i} begins by the quiet water, where the old boats rest at night."] + draw(st.lists(sentences(), min_size=1, max_size=6))
        paras.append(" ".join(sents))
    k = draw(st.integers(1, n - 1))
    new_word = draw(st.sampled_from(["lantern", "seaweed", "ferryman", "x"]))
    return paras, k, new_word


@PROPS
@given(long_paragraph_chapters())
def test_property_ids_stable_under_edits_elsewhere(project, data):
    paras, k, new_word = data
    edited = list(paras)
    edited[k] = edited[k].replace(" ", f" {new_word} ", 1)
    other = "# Other chapter\n\nThis chapter is not edited at all, and stays exactly as it was.\n"

    def doc(ps):
        return "# Title\n\n" + "\n\n".join(ps) + "\n\n" + other

    old, new = plan_text(project, doc(paras)), plan_text(project, doc(edited))
    # Identical segment texts in one chapter are told apart by an occurrence counter, so an edit
    # that makes or unmakes a duplicate renumbers the later twin: documented, excluded here.
    for plan in (old, new):
        texts = [s.text for s in plan.chapters[0].segments]
        assume(len(set(texts)) == len(texts))
    edited_line = 3 + 2 * k

    def rows(plan, ci=0):
        return [(s.id, s.text) for s in plan.chapters[ci].segments if s.source.line != edited_line]

    assert rows(old) == rows(new)
    assert rows(old, 1) == rows(new, 1)
    changed = [s for s in new.chapters[0].segments if s.source.line == edited_line]
    assert changed and any(s.id not in {o.id for o in old.chapters[0].segments} for s in changed)


def test_dialogue_edits_stay_local(project):
    names = ["ANNA", "BEN"]
    lines = [f"{names[i % 2]}: Line {i} is short, like chat." for i in range(120)]
    base = plan_text(project, "\n\n".join(lines) + "\n").chapters[0].segments
    for k in range(5, 120, 13):
        edited = list(lines)
        edited[k] = edited[k].replace("short", "brief")
        segs = plan_text(project, "\n\n".join(edited) + "\n").chapters[0].segments
        old_ids = {s.id for s in base}
        changed = [s for s in segs if s.id not in old_ids]
        assert 1 <= len(changed) <= 6, (k, len(changed))


def test_chapters_all_overrides_the_manifest_selection(tmp_path):
    """``--chapters all`` (plan_project(chapters="all")) plans every chapter even when the manifest
    selects some; None keeps the manifest's selection."""
    root = tmp_path / "p"
    root.mkdir()
    (root / "book.md").write_text("# One\n\nA.\n\n# Two\n\nB.\n\n# Three\n\nC.\n")
    (root / "project.yaml").write_text("title: T\nauthor: A\nmanuscript: book.md\nchapters: 2\n"
                                       "voices:\n  n: {seed: 1}\n")
    pr = load_project(root / "project.yaml")
    assert [c.index for c in plan_project(pr).chapters] == [2]
    for spec in ("all", "ALL", " all "):
        assert [c.index for c in plan_project(pr, chapters=spec).chapters] == [1, 2, 3]
    assert [c.index for c in plan_project(pr, chapters="1,3").chapters] == [1, 3]
