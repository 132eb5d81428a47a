"""Manuscript parsing: golden outputs per format, and bad input named by file:line."""
from __future__ import annotations

from pathlib import Path

import pytest

from dia_core.errors import InputError
from dia_core.script.manuscript import (KNOWN_CUES, MAX_LINE_CHARS, Casting, decode_text, parse_file,
                                 parse_project_manuscripts, parse_text)
from dia_core.script.project import load_project

CAST = Casting(
    narration_voice="narr",
    characters={"alex": "v_alex", "sam": "v_sam", "mr. brown": "v_brown"},
    character_names={"alex": "ALEX", "sam": "SAM", "mr. brown": "Mr. Brown"},
    raw_slots={"S1": "v_alex", "S2": "v_sam"},
    default_title="The Book",
)


def parse(text, cast=CAST):
    return parse_text(text, cast, file="book.md")


def rows(chapters):
    return [(c.index, c.title, c.source.line, [(b.kind, b.voice, b.character, b.text, b.source.line, b.boundary,
                                                b.paragraph) for b in c.blocks]) for c in chapters]


# ------------------------------------------------------------------ golden outputs

def test_markdown_chapters_and_paragraphs():
    text = ("# Chapter One\n\nIt was late.\nThe wind   rose.\n\n"
            "She *really* waited. **Bold** words.\n\n"
            "## Chapter Two ##\n\nMorning came.\n### A subheading\nMore.\n")
    chapters, warnings = parse(text)
    assert warnings == []
    assert rows(chapters) == [
        (1, "Chapter One", 1, [
            ("narration", "narr", "Narrator", "It was late. The wind rose.", 3, "chapter_start", 0),
            ("narration", "narr", "Narrator", "She really waited. Bold words.", 6, "paragraph", 1),
        ]),
        (2, "Chapter Two", 8, [
            ("narration", "narr", "Narrator", "Morning came. A subheading More.", 10, "chapter_start", 0),
        ]),
    ]
    assert all(c.has_heading for c in chapters)


def test_dialogue_lines():
    text = ("ALEX: Hello there.\nSAM: Hi.\nIt continues here.\n\n"
            "alex: Lower case works.\n\nAlex: Same speaker again.\n\n"
            "Mr. Brown: Good day.\n\nThe room went quiet.\nALEX:\nOn the next line.\n")
    chapters, warnings = parse(text)
    assert warnings == []
    (ch,) = chapters
    assert (ch.index, ch.title, ch.has_heading) == (1, "The Book", False)
    assert rows(chapters)[0][3] == [
        ("dialogue", "v_alex", "ALEX", "Hello there.", 1, "chapter_start", 0),
        ("dialogue", "v_sam", "SAM", "Hi. It continues here.", 2, "turn", 0),
        ("dialogue", "v_alex", "ALEX", "Lower case works.", 5, "turn", 1),
        ("dialogue", "v_alex", "ALEX", "Same speaker again.", 7, "paragraph", 2),
        ("dialogue", "v_brown", "Mr. Brown", "Good day.", 9, "turn", 3),
        ("narration", "narr", "Narrator", "The room went quiet.", 11, "paragraph", 4),
        ("dialogue", "v_alex", "ALEX", "On the next line.", 12, "turn", 4),
    ]


def test_raw_dia_lines():
    text = "[S1] Hello. [S2] Hi there.\n[S1] Bye (laughs)\nnow.\n\n[S2] Again.\n"
    chapters, warnings = parse(text)
    assert warnings == []
    assert rows(chapters)[0][3] == [
        ("raw", "v_alex", "v_alex", "Hello.", 1, "chapter_start", 0),
        ("raw", "v_sam", "v_sam", "Hi there.", 1, "turn", 0),
        ("raw", "v_alex", "v_alex", "Bye (laughs) now.", 2, "turn", 0),
        ("raw", "v_sam", "v_sam", "Again.", 5, "turn", 1),
    ]


@pytest.mark.parametrize("brk", ["***", "* * *", "---", "#", "-----", "*  *  *"])
def test_scene_breaks(brk):
    chapters, _ = parse(f"# One\n\nBefore.\n\n{brk}\n\nAfter.\nMore.\n\nLater.\n")
    assert [(b.text, b.boundary) for b in chapters[0].blocks] == [
        ("Before.", "chapter_start"), ("After. More.", "scene"), ("Later.", "paragraph")]


def test_scene_break_at_chapter_start_is_ignored():
    chapters, _ = parse("# One\n\n***\n\nText.\n")
    assert [(b.text, b.boundary) for b in chapters[0].blocks] == [("Text.", "chapter_start")]


def test_preamble_before_first_heading_is_its_own_chapter():
    chapters, _ = parse("A foreword.\n\n# One\n\nText.\n")
    assert [(c.index, c.title, c.has_heading) for c in chapters] == [(1, "The Book", False), (2, "One", True)]


def test_crlf_and_bom():
    text = decode_text(b"\xef\xbb\xbf# One\r\n\r\nText here.\r\n", "book.md")
    chapters, _ = parse(text)
    assert rows(chapters) == [(1, "One", 1, [("narration", "narr", "Narrator", "Text here.", 3, "chapter_start", 0)])]


def test_nonverbal_cues():
    text = "ALEX: That is funny (laughs) and odd (giggles).\n\nSAM: (clears throat) Yes.\n\nThe end (see page four).\n"
    chapters, warnings = parse(text)
    assert len(warnings) == 1
    assert warnings[0].startswith("book.md:1: nonverbal cue (giggles) is not one Dia knows")
    assert "(laughs)" in chapters[0].blocks[0].text and "(giggles)" in chapters[0].blocks[0].text
    assert {"laughs", "clears throat", "sighs", "applause", "chuckle", "whistles"} <= KNOWN_CUES
    assert len(KNOWN_CUES) == 21


def test_mixed_case_unknown_name_is_narration_with_warning():
    chapters, warnings = parse("Note: the ferry runs daily.\n\nTime: half past nine.\n")
    assert [b.kind for b in chapters[0].blocks] == ["narration", "narration"]
    assert chapters[0].blocks[0].text == "Note: the ferry runs daily."
    assert len(warnings) == 2 and warnings[0].startswith("book.md:1: 'Note' looks like a speaker")


def test_multi_file_numbering(tmp_path):
    root = tmp_path / "p"
    root.mkdir()
    (root / "a.md").write_text("# One\n\nA.\n\n# Two\n\nB.\n")
    (root / "b.md").write_text("No heading here.\n")
    (root / "project.yaml").write_text(
        "title: T\nauthor: A\nmanuscript: [a.md, b.md]\nvoices:\n  n: {seed: 1}\n")
    pr = load_project(root / "project.yaml")
    chapters, warnings = parse_project_manuscripts(pr)
    assert [(c.index, c.title, c.source.file) for c in chapters] == [(1, "One", "a.md"), (2, "Two", "a.md"),
                                                                     (3, "T", "b.md")]
    assert all(b.source.file in ("a.md", "b.md") for c in chapters for b in c.blocks)


# ------------------------------------------------------------------ bad input

@pytest.mark.parametrize("text,line,msg", [
    ("ALEX: hi\nBOB: who am I?\n", 2, "unknown speaker 'BOB'"),
    ("# One\n\n# Two\n\nText.\n", 1, "empty chapter 'One'"),
    ("# One\n\nText.\n\n# Two\n\n***\n", 5, "empty chapter 'Two'"),
    ("Some [S1] inside narration.\n", 1, "speaker tags belong only at the start"),
    ("ALEX: hi [S2] there\n", 1, "speaker tags belong only at the start"),
    ("# Title [S1]\n\nText.\n", 1, "not allowed in headings"),
    ("ALEX:\n\nText.\n", 1, "dialogue line without text"),
    ("[S1]\n", 1, "empty [S1] turn"),
    ("Text.\n\n" + "x" * (MAX_LINE_CHARS + 1) + "\n", 3, "characters long"),
])
def test_parse_errors(text, line, msg):
    with pytest.raises(InputError) as ei:
        parse(text)
    e = ei.value
    assert (e.file, e.line) == ("book.md", line)
    assert msg in e.message
    assert str(e).startswith(f"book.md:{line}: ")


def test_raw_s2_without_second_voice():
    cast = Casting("narr", {}, {}, {"S1": "narr", "S2": None}, "T")
    with pytest.raises(InputError, match="raw_slots.S2") as ei:
        parse("Hello.\n\n[S1] a [S2] b\n", cast)
    assert ei.value.line == 3


@pytest.mark.parametrize("data,line,msg", [
    (b"# One\n\nText\x00with nul\n", 3, "binary file"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", 3, "binary file"),
    (b"# One\n\ncaf\xe9 au lait\n", 3, "not UTF-8"),
    (b"\xff\xfe#\x00 \x00O\x00", None, "UTF-16"),
    (b"%PDF-1.7\n", None, "PDF"),
    (b"PK\x03\x04\x14\x00", None, "ZIP-based"),
    (b"\xef\xbb\xbf", None, "no text"),
    (b"\xef\xbb\xbf  \n\n \n", None, "no text"),
    (b"", None, "no text"),
    (b"Text \x01 with a control char\n", 1, "control character U+0001"),
])
def test_encoding_errors(tmp_path, data, line, msg):
    p = tmp_path / "book.md"
    p.write_bytes(data)
    with pytest.raises(InputError) as ei:
        parse_file(p, CAST, label="book.md")
    assert msg in ei.value.message
    assert ei.value.file == "book.md" and ei.value.line == line


def test_five_megabyte_single_line(tmp_path):
    p = tmp_path / "book.md"
    p.write_bytes(b"# One\n\n" + b"word " * 1_000_000 + b"\n")
    with pytest.raises(InputError) as ei:
        parse_file(p, CAST, label="book.md")
    assert ei.value.line == 3 and "5000000 characters long" in ei.value.message


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="cannot read manuscript"):
        parse_file(tmp_path / "nope.md", CAST)


def test_example_manuscripts_parse():
    root = Path(__file__).resolve().parents[3] / "projects"
    pod = load_project(root / "podcast-episode" / "project.yaml")
    chapters, warnings = parse_project_manuscripts(pod)
    assert warnings == [] and [c.title for c in chapters] == ["Episode 12: Small Habits", "Friction", "Tracking"]
    assert [c.has_heading for c in chapters] == [True, False, False]   # sections by <!-- chapter: ... -->
    assert {b.voice for c in chapters for b in c.blocks} == {"alex", "sam"}
    words = sum(len(b.text.split()) for c in chapters for b in c.blocks)
    assert 150 <= words <= 250
    book = load_project(root / "short-audiobook" / "project.yaml")
    chapters, warnings = parse_project_manuscripts(book)
    assert warnings == [] and len(chapters) == 3
    assert {b.character for c in chapters for b in c.blocks} >= {"Narrator", "MARA", "TOBIAS", "KEEPER"}
    assert any(b.boundary == "scene" for c in chapters for b in c.blocks)


# ------------------------------------------------------------------ adversarial-pass regressions

@pytest.mark.parametrize("text,code", [
    ("Zero\u200bwidth space.", "U+200B ZERO WIDTH SPACE (invisible formatting)"),
    ("A soft\u00adhyphen.", "U+00AD SOFT HYPHEN (invisible formatting)"),
    ("Joined\u200dwords.", "U+200D ZERO WIDTH JOINER (invisible formatting)"),
    ("She said \u4f60\u597d to him.", "U+4F60 CJK UNIFIED IDEOGRAPH-4F60 (CJK/Hangul)"),
    ("A word: \ud55c\uad6d.", "U+D55C HANGUL SYLLABLE HAN (CJK/Hangul)"),
    ("Shalom \u05e9\u05dc\u05d5\u05dd here.", "U+05E9 HEBREW LETTER SHIN (right-to-left script)"),
    ("Salaam \u0633\u0644\u0627\u0645 here.", "U+0633 ARABIC LETTER SEEN (right-to-left script)"),
    ("A smile \U0001F600 here.", "U+1F600 GRINNING FACE (emoji/pictograph)"),
    ("Love \u2764\ufe0f it.", "U+2764 HEAVY BLACK HEART (emoji/pictograph)"),
])
def test_unreadable_characters_warn_with_line_and_code_point(text, code):
    chapters, warnings = parse(f"# One\n\nA plain first line.\n{text}\n")
    assert chapters[0].blocks[0].text.endswith(text.split()[-1])   # left in the text
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(f"book.md:4: Dia's English model cannot read {code}"), warnings[0]


def test_readable_non_ascii_does_not_warn():
    _, warnings = parse("# Caf\u00e9\n\n\u201cNa\u00efve,\u201d she said \u2014 \u00bd past nine, 20\u00b0C, \u20ac5\u2026 "
                        "Stra\u00dfe, \u00c5se, \u03c0.\n")
    assert warnings == []


def test_unreadable_characters_are_capped_per_file():
    text = "# One\n\n" + "".join(f"Line {i} with \u200b.\n" for i in range(30))
    _, warnings = parse(text)
    assert len(warnings) == 21
    assert warnings[-1] == "book.md: 10 more lines with characters Dia's English model cannot read (not listed)"


def _book(tmp_path, manuscript: str, profile: str = "acx", files: dict | None = None):
    root = tmp_path / "p"
    root.mkdir(exist_ok=True)
    (root / "book.md").write_text(manuscript)
    names = ["book.md"]
    for name, text in (files or {}).items():
        (root / name).write_text(text)
        names.append(name)
    (root / "project.yaml").write_text(
        f"title: T\nauthor: A\nmanuscript: [{', '.join(names)}]\nvoices:\n  n: {{seed: 1}}\n"
        f"delivery: {{profile: {profile}}}\n")
    return load_project(root / "project.yaml")


def test_duplicate_chapter_titles_warn(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pr = _book(tmp_path, "# Chapter One\n\nA.\n\n# Interlude\n\nB.\n\n# chapter  one\n\nC.\n",
               files={"more.md": "# Interlude\n\nD.\n"})
    chapters, warnings = parse_project_manuscripts(pr)
    assert warnings == [
        "p/book.md:9: chapter 3 has the same title as chapter 1 (p/book.md:1): 'chapter one'; the book's "
        "chapter list will show both alike",
        "p/more.md:1: chapter 4 has the same title as chapter 2 (p/book.md:5): 'Interlude'; the book's "
        "chapter list will show both alike",
    ]
    from dia_core.script.planner import plan_project
    assert plan_project(pr).warnings == warnings


def test_chapter_over_acx_120_minutes_warns_at_validate_and_plan(tmp_path, monkeypatch):
    """A 30,000-word chapter (~200 min) warns when the manuscripts are parsed (validate) and planned."""
    from dia_core.script.planner import estimate_chapter_seconds, plan_project, read_manuscripts

    para = " ".join(["The keeper climbed the stairs and lit the lamp again."] * 10)   # 100 words
    long = "# Long\n\n" + "\n\n".join([para] * 300) + "\n\n# Short\n\nThe end.\n"
    monkeypatch.chdir(tmp_path)
    pr = _book(tmp_path, long)
    assert parse_project_manuscripts(pr)[1] == []   # the estimate is the planner's: read_manuscripts adds it
    chapters, warnings = read_manuscripts(pr)
    (w,) = warnings
    assert w.startswith("p/book.md:1: chapter 1 ('Long') is about ") and "ACX limits files to 120 minutes" in w
    plan = plan_project(pr)
    assert plan.warnings == [w]
    est = plan.chapters[0].est_seconds
    assert est > 120 * 60 and f"is about {est / 60:.1f} minutes" in w
    assert estimate_chapter_seconds(pr, chapters[0]) == pytest.approx(est, abs=0.5)
    assert estimate_chapter_seconds(pr, chapters[1]) == pytest.approx(plan.chapters[1].est_seconds, abs=0.01)
    # other profiles have no per-file limit
    assert read_manuscripts(_book(tmp_path, long, profile="podcast"))[1] == []
