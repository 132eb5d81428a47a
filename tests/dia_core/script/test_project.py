"""Project manifest loading: typed objects, defaults, and errors naming file:line: field."""
from __future__ import annotations

import math
import os
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dia_core.settings import DeliverySettings, Pauses
from dia_core.errors import InputError
from dia_core.params import FRAME_RATE, SamplingParams
from dia_core.script.project import (CALIBRATION_MARGIN, DEFAULT_CALIBRATION_TEXT, QCSettings, SegmentingSettings,
                              load_project, parse_chapter_selection, prompt_frames_for)

REPO = Path(__file__).resolve().parents[3]
PROJECTS = REPO / "projects"


def make_wav(path: Path, seconds: float, rate: int = 16000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    sf.write(str(path), (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate, subtype="PCM_16")
    return path


def make_cover(path: Path, width: int, height: int | None = None, fmt: str = "JPEG", mode: str = "RGB") -> Path:
    from PIL import Image
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, (width, height or width), "red" if mode != "CMYK" else (0, 255, 255, 0)).save(path, fmt)
    return path


BASE = """\
title: Test Book
author: A. Writer
manuscript: book.md
voices:
  narrator:
    reference: voices/narrator.wav
    transcript: Hello there, this is the narrator.
  anna:
    seed: 5
characters:
  ANNA: anna
narrator_voice: narrator
"""


def write(tmp_path: Path, manifest: str, *, book: str = "# One\n\nSome text here.\n", ref_seconds=6.0) -> Path:
    root = tmp_path / "proj"
    root.mkdir(exist_ok=True)
    (root / "book.md").write_text(book)
    make_wav(root / "voices" / "narrator.wav", ref_seconds)
    p = root / "project.yaml"
    p.write_text(textwrap.dedent(manifest))
    return p


def load_error(tmp_path, manifest, **kw) -> InputError:
    p = write(tmp_path, manifest, **kw)
    with pytest.raises(InputError) as ei:
        load_project(p)
    return ei.value


# ------------------------------------------------------------------ valid manifests

def test_minimal_manifest_defaults(tmp_path):
    p = write(tmp_path, BASE)
    pr = load_project(p)
    root = p.parent.resolve()
    assert pr.manifest_path == p.resolve() and pr.root == root
    assert (pr.title, pr.author, pr.narrator, pr.genre, pr.description, pr.language) == (
        "Test Book", "A. Writer", None, "Audiobook", None, "en")
    assert pr.cover is None and pr.chapters is None and pr.model is None
    assert pr.manuscripts == (root / "book.md",)
    assert pr.seed == 0
    assert pr.sampling == SamplingParams()
    assert pr.sampling.temperature == 1.3 and pr.sampling.top_p == 0.95 and pr.sampling.cfg_scale == 4
    assert pr.sampling.cfg_filter_top_k == 35 and pr.sampling.speed_factor == 0.94
    assert pr.sampling.max_new_tokens == 3072
    assert pr.segmenting == SegmentingSettings(5, 20, 14.0)
    assert pr.qc == QCSettings(3, 0.5, 2.0, 2.0)
    assert pr.delivery == DeliverySettings()
    assert pr.output_dir == root / "out" and pr.work_dir == root / ".dia-studio"
    assert pr.characters == {"ANNA": "anna"} and pr.narration_voice == "narrator"
    assert pr.voice_for_character("Anna") == "anna" and pr.voice_for_character("Bob") is None
    assert pr.raw_slots == {"S1": "narrator", "S2": "anna"}
    assert pr.lexicon == {}
    n = pr.voices["narrator"]
    assert n.reference == root / "voices" / "narrator.wav"
    assert n.transcript == "Hello there, this is the narrator."
    assert n.reference_seconds == pytest.approx(6.0)
    assert n.seed == 0 and n.chars_per_second == 14.0 and not n.seed_only
    a = pr.voices["anna"]
    assert a.seed_only and a.reference is None and a.transcript is None and a.seed == 5
    assert a.calibration_text == DEFAULT_CALIBRATION_TEXT
    assert pr.warnings == ()


def test_full_manifest(tmp_path):
    (tmp_path / "proj" / "art").mkdir(parents=True)
    make_cover(tmp_path / "proj" / "art" / "cover.jpg", 600)
    (tmp_path / "proj" / "book2.md").write_text("More text.\n")
    p = write(tmp_path, """\
        title: Full
        author: Someone
        narrator: Reader Person
        genre: Fiction
        description: A description.
        language: en-GB
        cover: art/cover.jpg
        manuscript: [book.md, book2.md]
        chapters: 1,3-4
        seed: 9
        sampling: {temperature: 1.5, max_new_tokens: 2048}
        voices:
          narrator:
            reference: voices/narrator.wav
            transcript: "Hello,   there."
            sampling: {top_p: 0.9}
            chars_per_second: 12
            draft_voice: en-gb+m1
          anna:
            seed: 3
            calibration_text: A short line of mine.
            sampling: {temperature: 0}
        characters: {Anna: anna, "Mr. Brown": narrator}
        narrator_voice: narrator
        raw_slots: {S1: anna, S2: narrator}
        segmenting: {min_seconds: 4, max_seconds: 18, chars_per_second: 15, read_headings: false}
        lexicon: {Caerwyn: Kair-win, NASA: "nasa"}
        delivery:
          profile: custom
          target_lufs: -16
          true_peak_db: -1
          formats: [flac, mp3]
          captions: []
          mp3_bitrate_kbps: 128
          pauses: {turn: 0.3}
          trim: {threshold_db: -50}
        qc: {max_attempts: 5, duration_ratio_max: 3}
        model: nari-labs/Dia-1.6B-0626
        output_dir: renders
        """)
    pr = load_project(p)
    root = p.parent.resolve()
    assert pr.narrator == "Reader Person" and pr.genre == "Fiction" and pr.language == "en-GB"
    assert pr.cover == root / "art" / "cover.jpg"
    assert pr.manuscripts == (root / "book.md", root / "book2.md")
    assert pr.chapters == (1, 3, 4)
    assert pr.sampling == SamplingParams(temperature=1.5, max_new_tokens=2048)
    n, a = pr.voices["narrator"], pr.voices["anna"]
    assert n.sampling == SamplingParams(temperature=1.5, max_new_tokens=2048, top_p=0.9)
    assert n.seed == 9 and n.chars_per_second == 12 and n.draft_voice == "en-gb+m1"
    assert n.transcript == "Hello, there."
    assert a.sampling.temperature == 0 and a.sampling.max_new_tokens == 2048
    assert a.chars_per_second == 15 and a.calibration_text == "A short line of mine."
    assert pr.characters == {"Anna": "anna", "Mr. Brown": "narrator"}
    assert pr.character_names == {"anna": "Anna", "mr. brown": "Mr. Brown"}
    assert pr.raw_slots == {"S1": "anna", "S2": "narrator"}
    assert pr.segmenting == SegmentingSettings(4, 18, 15, False)
    assert pr.lexicon == {"Caerwyn": "Kair-win", "NASA": "nasa"}
    d = pr.delivery
    assert d.profile == "custom" and d.target_lufs == -16 and d.true_peak_db == -1
    assert d.formats == ("flac", "mp3") and d.captions == () and d.mp3_bitrate_kbps == 128
    assert d.pauses == Pauses(turn=0.3) and d.trim.threshold_db == -50 and d.trim.padding_ms == 40
    assert pr.qc == QCSettings(5, 0.5, 3.0, 2.0)
    assert pr.model == "nari-labs/Dia-1.6B-0626"
    assert pr.output_dir == root / "renders"


def test_example_projects_load():
    pod = load_project(PROJECTS / "podcast-episode" / "project.yaml")
    assert pod.delivery.profile == "podcast"
    assert set(pod.voices) == {"alex", "sam"} and pod.characters == {"ALEX": "alex", "SAM": "sam"}
    assert pod.voices["sam"].sampling.temperature == 1.2 and pod.voices["sam"].seed == 11
    assert pod.voices["alex"].seed == 7
    book = load_project(PROJECTS / "short-audiobook" / "project.yaml")
    assert book.delivery.profile == "acx"
    assert len(book.characters) >= 3
    assert any(v.seed_only for v in book.voices.values())
    for pr in (pod, book):
        assert pr.warnings == ()
        for v in pr.voices.values():
            if v.reference is not None:
                assert 5 <= v.reference_seconds <= 8
                assert v.reference.stat().st_size < 1_000_000
                info = sf.info(str(v.reference))
                assert (info.samplerate, info.channels) == (44100, 1)


def test_prompt_frames_for(tmp_path):
    pr = load_project(write(tmp_path, BASE, ref_seconds=6.5))
    assert prompt_frames_for(pr.voices["narrator"]) == math.ceil(6.5 * FRAME_RATE)
    a = pr.voices["anna"]
    expected = math.ceil(len(DEFAULT_CALIBRATION_TEXT) / 14.0 * FRAME_RATE * CALIBRATION_MARGIN)
    assert prompt_frames_for(a) == expected
    assert a.prompt_transcript == DEFAULT_CALIBRATION_TEXT


def test_yaml_merge_keys_and_anchors(tmp_path):
    extra = ("sampling: &s {temperature: 1.1}\n"
             "qc:\n  <<: {max_attempts: 4, duration_ratio_min: 0.4}\n  max_attempts: 2\n")
    pr = load_project(write(tmp_path, BASE + extra))
    assert pr.sampling.temperature == 1.1
    assert pr.qc.max_attempts == 2 and pr.qc.duration_ratio_min == 0.4


def test_short_reference_warns(tmp_path):
    pr = load_project(write(tmp_path, BASE, ref_seconds=2.0))
    assert len(pr.warnings) == 1
    assert "voices.narrator.reference" in pr.warnings[0] and "5-10 s" in pr.warnings[0]
    assert "project.yaml:6: " in pr.warnings[0]


def test_shared_seed_warns(tmp_path):
    manifest = BASE.replace("  anna:\n    seed: 5\n", "  anna: {seed: 5}\n  ben: {seed: 5}\n")
    pr = load_project(write(tmp_path, manifest))
    assert any("share seed 5" in w for w in pr.warnings)


@pytest.mark.parametrize("spec,expected", [
    ("1,3-4", (1, 3, 4)), ("2", (2,)), ([3, 1], (1, 3)), ("all", None), (None, None), ("1-3,2", (1, 2, 3)),
    ("ALL", None), (" all ", None),
])
def test_chapter_selection(spec, expected):
    assert parse_chapter_selection(spec) == expected


@pytest.mark.parametrize("spec", ["x", "0", "3-1", [0], ["1"], "", 1.5])
def test_chapter_selection_errors(spec):
    with pytest.raises(InputError):
        parse_chapter_selection(spec)


# ------------------------------------------------------------------ errors

def where(e: InputError):
    return Path(e.file).name, e.line, e.field


def test_missing_reference_names_file_line_field(tmp_path):
    e = load_error(tmp_path, BASE.replace("voices/narrator.wav", "voices/missing.wav"))
    assert where(e) == ("project.yaml", 6, "voices.narrator.reference")
    assert str(e).endswith("project.yaml:6: voices.narrator.reference: file not found: voices/missing.wav")


@pytest.mark.parametrize("extra,line,field,msg", [
    ("titel: x\n", 13, "titel", "unknown key (did you mean 'title'?)"),
    ("sampling: {temprature: 1}\n", 13, "sampling.temprature", "unknown key (did you mean 'temperature'?)"),
    ("sampling:\n  temperature: 3\n", 14, "sampling.temperature", "must be between 0.1 and 2"),
    ("sampling:\n  speed_factor: 2\n", 14, "sampling.speed_factor", "must be between 0.5 and 1.5"),
    ("sampling:\n  max_new_tokens: 100\n", 14, "sampling.max_new_tokens", "must be between 500 and 4096"),
    ("sampling:\n  cfg_filter_top_k: 3.5\n", 14, "sampling.cfg_filter_top_k", "must be an integer"),
    ("seed: abc\n", 13, "seed", "must be an integer"),
    ("segmenting: {min_seconds: 10, max_seconds: 8}\n", 13, "segmenting.max_seconds", "larger than"),
    ("segmenting: {target: 3}\n", 13, "segmenting.target", "unknown key"),
    ("delivery: {profile: loud}\n", 13, "delivery.profile", "unknown profile"),
    ("delivery:\n  formats: [mp3, ogg]\n", 14, "delivery.formats", "unknown format"),
    ("delivery:\n  pauses: {sentense: 1}\n", 14, "delivery.pauses.sentense", "unknown key"),
    ("delivery:\n  pauses: {turn: -1}\n", 14, "delivery.pauses.turn", "between"),
    ("delivery:\n  trim:\n    foo: 1\n", 15, "delivery.trim.foo", "unknown key"),
    ("delivery: {profile: acx, mp3_bitrate_kbps: 128}\n", 13, "delivery.mp3_bitrate_kbps", "ACX"),
    ("delivery: {profile: custom}\n", 13, "delivery.target_lufs", "custom profile needs"),
    ("qc: {max_attempts: 0}\n", 13, "qc.max_attempts", "between"),
    ("qc: {retries: 2}\n", 13, "qc.retries", "unknown key"),
    ("lexicon: {' x': y}\n", 13, "lexicon. x", "without surrounding spaces"),
    ("lexicon: {x: [1]}\n", 13, "lexicon.x", "must be a string"),
    ("raw_slots: {S3: anna}\n", 13, "raw_slots.S3", "unknown key"),
    ("raw_slots: {S2: ghost}\n", 13, "raw_slots.S2", "voice 'ghost' is not defined"),
    ("language: english please\n", 13, "language", "not a language tag"),
    ("model: ./weights/dia\n", 13, "model", "model path not found"),
    ("chapters: 2-x\n", 13, "chapters", "bad chapter selection"),
    ("output_dir: ../elsewhere\n", 13, "output_dir", "escapes the project directory"),
    ("cover: ../../etc/passwd\n", 13, "cover", "escapes the project directory"),
])
def test_field_errors(tmp_path, extra, line, field, msg):
    e = load_error(tmp_path, BASE + extra)
    assert where(e) == ("project.yaml", line, field)
    assert msg in e.message


@pytest.mark.parametrize("old,new,line,field,msg", [
    ("    transcript: Hello there, this is the narrator.\n", "", 6, "voices.narrator.transcript", "needs the reference"),
    ("    reference: voices/narrator.wav\n", "", 6, "voices.narrator.reference", "needs a reference audio"),
    ("    seed: 5\n", "    chars_per_second: 12\n", 8, "voices.anna.seed", "seed-only voice needs a seed"),
    ("    seed: 5\n", "    seed: 5\n    pitch: 3\n", 10, "voices.anna.pitch", "unknown key"),
    ("  ANNA: anna\n", "  ANNA: bob\n", 11, "characters.ANNA", "voice 'bob' is not defined"),
    ("narrator_voice: narrator\n", "narrator_voice: nobody\n", 12, "narrator_voice", "not defined"),
    ("  ANNA: anna\n", "  'ANNA: X': anna\n", 11, "characters.ANNA: X", "character names"),
    ("  ANNA: anna\n", "  ANNA: anna\n  anna: narrator\n", 12, "characters.anna", "case-insensitively"),
    ("this is the narrator.", "this is [S1] the narrator.", 7, "voices.narrator.transcript", "[S1]/[S2]"),
    ("    seed: 5\n", "    seed: 5\n    sampling: {top_p: 2}\n", 10, "voices.anna.sampling.top_p", "between"),
    ("  anna:\n", "  'bad name':\n", 8, "voices.bad name", "voice names"),
    ("    seed: 5\n", "    seed: true\n", 9, "voices.anna.seed", "must be an integer"),
    ("  anna:\n    seed: 5\n", "  anna: 5\n", 8, "voices.anna", "must be a mapping"),
    ("manuscript: book.md\n", "manuscript: nothere.md\n", 3, "manuscript", "file not found"),
    ("manuscript: book.md\n", "manuscript: [book.md, ../x.md]\n", 3, "manuscript", "escapes"),
    ("manuscript: book.md\n", "manuscript: /etc/hostname\n", 3, "manuscript", "escapes"),
    ("manuscript: book.md\n", "manuscript: voices\n", 3, "manuscript", "not a regular file"),
    ("title: Test Book\n", "", 1, "title", "required key missing"),
    ("title: Test Book\n", "title: ''\n", 1, "title", "must not be empty"),
    ("title: Test Book\n", "title: [a]\n", 1, "title", "must be a string"),
])
def test_voice_and_reference_errors(tmp_path, old, new, line, field, msg):
    assert old in BASE
    e = load_error(tmp_path, BASE.replace(old, new, 1))
    assert where(e) == ("project.yaml", line, field), str(e)
    assert msg in e.message


def test_calibration_text_only_for_seed_only(tmp_path):
    e = load_error(tmp_path, BASE.replace("    transcript: Hello there, this is the narrator.\n",
                                          "    transcript: Hi.\n    calibration_text: Hello.\n"))
    assert e.field == "voices.narrator.calibration_text"


def test_reference_not_audio(tmp_path):
    p = write(tmp_path, BASE)
    (p.parent / "voices" / "narrator.wav").write_bytes(b"RIFF but not really a wav file at all")
    with pytest.raises(InputError) as ei:
        load_project(p)
    assert where(ei.value) == ("project.yaml", 6, "voices.narrator.reference")
    assert "cannot read audio" in ei.value.message


def test_reference_too_long_and_empty(tmp_path):
    e = load_error(tmp_path, BASE, ref_seconds=61)
    assert e.field == "voices.narrator.reference" and "limit 60" in e.message
    p = write(tmp_path, BASE)
    sf.write(str(p.parent / "voices" / "narrator.wav"), np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(InputError) as ei:
        load_project(p)
    assert "empty" in ei.value.message


def test_path_escape_through_symlink(tmp_path):
    outside = tmp_path / "outside.md"
    outside.write_text("secret\n")
    p = write(tmp_path, BASE.replace("manuscript: book.md", "manuscript: link.md"))
    os.symlink(outside, p.parent / "link.md")
    with pytest.raises(InputError) as ei:
        load_project(p)
    assert ei.value.field == "manuscript" and "escapes" in ei.value.message


def test_malformed_yaml_has_line(tmp_path):
    e = load_error(tmp_path, BASE + "sampling: [unclosed\nseed: 1\n")
    assert e.file.endswith("project.yaml") and e.line in (13, 14, 15)
    assert "malformed YAML" in e.message
    e = load_error(tmp_path, "title: x\n  author: y\n")
    assert "malformed YAML" in e.message and e.line == 2


def test_duplicate_keys(tmp_path):
    e = load_error(tmp_path, BASE + "title: Again\n")
    assert (e.line, "duplicate key 'title'") == (13, e.message.split(" (")[0])


@pytest.mark.parametrize("doc,msg", [
    ("!!python/object/apply:os.system ['echo pwned']\n", "not allowed"),
    ("title: !!python/name:os.system x\n", "not allowed"),
    ("title: !custom x\n", "not allowed"),
    ("title: !!binary aGVsbG8=\n", "not allowed"),
    ("title: !!set {a, b}\n", "not allowed"),
    ("- a\n- b\n", "must be a mapping"),
    ("", "empty manifest"),
    ("# only a comment\n", "empty manifest"),
    ("a: 1\n---\nb: 2\n", "malformed YAML"),
    ("? [a, b]\n: c\n", "keys must be plain strings"),
    ("a: &a [*a]\n", "recursive"),
])
def test_unsafe_or_odd_yaml(tmp_path, doc, msg):
    e = load_error(tmp_path, doc)
    assert msg in e.message, str(e)


def test_alias_bomb_is_capped(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    e = load_error(tmp_path, "\n".join(lines) + "\n")
    assert "alias" in e.message


def test_manifest_size_binary_and_encoding(tmp_path):
    p = write(tmp_path, BASE)
    p.write_bytes(b"title: x\n" + b"#" * 1_100_000 + b"\n")
    with pytest.raises(InputError, match="limit 1000000"):
        load_project(p)
    p.write_bytes(b"title: x\x00\n")
    with pytest.raises(InputError, match="binary"):
        load_project(p)
    p.write_bytes(b"title: caf\xe9\n")
    with pytest.raises(InputError, match="not UTF-8") as ei:
        load_project(p)
    assert ei.value.line == 1
    with pytest.raises(InputError, match="manifest not found"):
        load_project(tmp_path / "nope.yaml")


# ------------------------------------------------------------------ adversarial-pass regressions

def test_pcm_bits_one_rule_for_loader_and_encoder(tmp_path):
    """delivery.pcm_bits: what the manifest accepts is what the encoder encodes (settings.PCM_BITS);
    32 used to validate and then fail every render at export."""
    from dia_core.audio.encode import to_pcm
    from dia_core.settings import PCM_BITS

    e = load_error(tmp_path, BASE + "delivery:\n  pcm_bits: 32\n")
    assert where(e) == ("project.yaml", 14, "delivery.pcm_bits")
    assert e.message == "must be 16 or 24, got 32"
    x = np.zeros(8, np.float32)
    for bits in (8, 12, 16, 20, 24, 32):
        try:
            load_project(write(tmp_path, BASE + f"delivery:\n  pcm_bits: {bits}\n"))
            loads = True
        except InputError:
            loads = False
        try:
            to_pcm(x, bits)
            encodes = True
        except InputError:
            encodes = False
        assert loads == encodes == (bits in PCM_BITS), bits


def _cover_project(tmp_path, name: str, data: bytes | None = None, *, profile: str = "acx") -> Path:
    p = write(tmp_path, BASE + f"cover: {name}\ndelivery: {{profile: {profile}}}\n")
    if data is not None:
        (p.parent / name).write_bytes(data)
    return p


def _jpeg_bytes(size: int = 600) -> bytes:
    import io
    from PIL import Image
    buf = io.BytesIO()
    Image.effect_noise((size, size), 40).convert("RGB").save(buf, "JPEG")
    return buf.getvalue()


@pytest.mark.parametrize("name,data,msg", [
    ("cover.jpg", os.urandom(4096), "not a JPEG or PNG image (not an image Pillow can read)"),
    ("cover.jpg", b"", "not a JPEG or PNG image (an empty file)"),
    ("cover.svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', "(an SVG or other text file)"),
    ("cover.gif", b"GIF89a", "not a JPEG or PNG image"),
    ("cover.jpg", b"\xff\xd8\xff", "not a JPEG or PNG image"),
    ("cover.jpg", _jpeg_bytes()[:3000], "cannot decode the JPEG"),     # truncated
    ("cover.png", None, "cannot decode the PNG"),                        # corrupt pixel data (below)
    ("cover.gif", None, "a GIF image: the cover must be JPEG or PNG"),   # a real GIF (below)
    ("cover.png", None, "image is 8x8 px: too small"),                   # (below)
    ("cover.png", None, "over the 64 megapixel limit"),                  # a decompression bomb (below)
])
def test_corrupt_cover_fails_at_validation(tmp_path, name, data, msg):
    """A cover is decoded when the project loads, not found broken by the M4B step at the end."""
    from PIL import Image
    p = _cover_project(tmp_path, name, data)
    target = p.parent / name
    if data is None and "decode the PNG" in msg:
        Image.effect_noise((400, 400), 40).save(target, "PNG")
        raw = bytearray(target.read_bytes())
        i = raw.index(b"IDAT") + 200
        raw[i:i + 64] = os.urandom(64)
        target.write_bytes(bytes(raw))
    elif data is None and "GIF" in msg:
        Image.new("P", (600, 600)).save(target, "GIF")
    elif data is None and "8x8" in msg:
        Image.new("RGB", (8, 8), "red").save(target, "PNG")
    elif data is None:
        Image.new("1", (9000, 9000)).save(target, "PNG")
    with pytest.raises(InputError) as ei:
        load_project(p)
    assert where(ei.value) == ("project.yaml", 13, "cover"), str(ei.value)
    assert msg in ei.value.message, str(ei.value)


def test_cover_warnings(tmp_path):
    ok = load_project(_cover_project(tmp_path, "c.jpg", _jpeg_bytes(2400)))
    assert ok.warnings == () and ok.cover.name == "c.jpg"
    (w,) = load_project(_cover_project(tmp_path, "c.jpg", _jpeg_bytes(600))).warnings
    assert w.endswith("project.yaml:13: cover: cover is 600x600 px: ACX wants a square cover of at least "
                      "2400x2400 px")
    assert load_project(_cover_project(tmp_path, "c.jpg", _jpeg_bytes(600), profile="podcast")).warnings == ()
    p = _cover_project(tmp_path, "wide.png", profile="podcast")
    make_cover(p.parent / "wide.png", 800, 600, "PNG")
    (w,) = load_project(p).warnings
    assert "cover is 800x600 px: audiobook and podcast covers are square" in w
    p = _cover_project(tmp_path, "cmyk.jpg", profile="podcast")
    make_cover(p.parent / "cmyk.jpg", 600, fmt="JPEG", mode="CMYK")
    assert any("CMYK" in w for w in load_project(p).warnings)


def test_reference_over_max_new_tokens_is_named_at_validation(tmp_path):
    """A reference clip that leaves no room for text in max_new_tokens fails at load, naming the
    clip's frames (not at plan as 'a word of 7 characters cannot fit')."""
    voice_level = BASE.replace("    transcript: Hello there, this is the narrator.\n",
                               "    transcript: Hello there, this is the narrator.\n"
                               "    sampling: {max_new_tokens: 500}\n")
    e = load_error(tmp_path, voice_level, ref_seconds=7.2)
    assert where(e) == ("project.yaml", 8, "voices.narrator.sampling.max_new_tokens"), str(e)
    assert e.message.startswith("the reference clip (7.2 s) needs 621 decoder frames of the 484 available "
                                "with max_new_tokens 500, leaving none for text"), e.message
    assert "raise max_new_tokens to at least 896" in e.message
    # set for the whole project: reported at the voice's reference, naming the line that set it
    e = load_error(tmp_path, BASE + "sampling:\n  max_new_tokens: 500\n", ref_seconds=7.2)
    assert where(e) == ("project.yaml", 6, "voices.narrator.reference"), str(e)
    assert "needs 621 decoder frames of the 484 available" in e.message and "at line 14" in e.message
    # seed-only voices: the calibration line is the prompt
    e = load_error(tmp_path, BASE.replace("    seed: 5\n", "    seed: 5\n    sampling: {max_new_tokens: 500}\n"))
    assert where(e) == ("project.yaml", 10, "voices.anna.sampling.max_new_tokens"), str(e)
    assert e.message.startswith("the calibration line (~4.8 s) needs 416 decoder frames of the 484 available")
    # enough room: loads
    pr = load_project(write(tmp_path, BASE + "sampling:\n  max_new_tokens: 1000\n", ref_seconds=5.0))
    assert pr.voices["narrator"].sampling.max_new_tokens == 1000


def _write_ref(p: Path, x: np.ndarray, rate: int = 16000) -> None:
    sf.write(str(p.parent / "voices" / "narrator.wav"), x.astype(np.float32), rate, subtype="PCM_16")


def test_reference_levels(tmp_path):
    """Digital silence fails; a near-silent or clipped reference warns; a clean one at full scale does not."""
    t = np.arange(6 * 16000) / 16000
    tone = np.sin(2 * np.pi * 220 * t)
    p = write(tmp_path, BASE)
    _write_ref(p, np.zeros(len(t)))
    with pytest.raises(InputError) as ei:
        load_project(p)
    assert where(ei.value) == ("project.yaml", 6, "voices.narrator.reference")
    assert "digital silence" in ei.value.message
    _write_ref(p, 0.001 * tone)
    (w,) = load_project(p).warnings
    assert "project.yaml:6: voices.narrator.reference: reference is nearly silent (RMS -63 dBFS" in w
    _write_ref(p, np.clip(3 * tone, -1, 1))
    (w,) = load_project(p).warnings
    assert "project.yaml:6: voices.narrator.reference: reference clips: " in w and "at full scale" in w
    _write_ref(p, tone / np.abs(tone).max())        # peaks at full scale, not clipped
    assert load_project(p).warnings == ()


@pytest.mark.parametrize("yaml_value,expected", [("[1, 3]", (1, 3)), ("[2]", (2,)), ("all", None), ("'1,3-4'", (1, 3, 4))])
def test_chapters_in_yaml_as_list_string_or_all(tmp_path, yaml_value, expected):
    """A YAML list of chapter numbers is read as numbers (it used to fail on the located values)."""
    pr = load_project(write(tmp_path, BASE + f"chapters: {yaml_value}\n"))
    assert pr.chapters == expected


def test_tempo_engine_one_list_for_loader_and_stretcher(tmp_path):
    """delivery.tempo_engine: the names the manifest accepts are the stretcher's (settings.TEMPO_ENGINES)."""
    from dia_core.audio import tempo
    from dia_core.settings import TEMPO_ENGINES

    e = load_error(tmp_path, BASE + "delivery:\n  tempo_engine: sox\n")
    assert where(e) == ("project.yaml", 14, "delivery.tempo_engine")
    assert "unknown tempo engine 'sox'" in e.message
    assert load_project(write(tmp_path, BASE)).delivery.tempo_engine == "auto"
    for name in TEMPO_ENGINES:
        assert load_project(write(tmp_path, BASE + f"delivery:\n  tempo_engine: {name}\n")).delivery.tempo_engine == name
        assert tempo.resolve_engine(name) in tempo.ENGINES
