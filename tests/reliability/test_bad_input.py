"""Bad-input corpus: every case must fail fast with exit code 2 and ONE clear line on stderr that
names the offending file (or option) and the problem, no traceback, and nothing in --out.

Each case is a small function that breaks a copy of the fixture project in its own folder and
returns the command to run. The real CLI runs in a subprocess, so exit codes and stderr are real.
All cases run once per session on two workers (they stop before any Prefect flow, ~1 s each);
each parametrized test then checks its own case.
"""
from __future__ import annotations

import os
import re
import struct
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from .conftest import base_env, run_cli
from .fixture import PROJECT_YAML, REFERENCE_TRANSCRIPT, build_project

BASE_YAML = PROJECT_YAML.format(transcript=REFERENCE_TRANSCRIPT)


@dataclass
class Case:
    id: str
    build: Callable[[Path], list]      # root -> CLI args (after the command); breaks the project
    names: str                          # what the message must name: a file (basename) or an option
    says: str                           # regex (case-insensitive) the message must match: the problem
    command: str = "render"             # render (with --draft --out), validate or plan
    line: int | None = None             # the message must point at this line (file:LINE:)
    check: Callable[[Path], None] | None = None   # extra assertion after the run (e.g. no side effect)
    marks: list = field(default_factory=list)


CASES: list[Case] = []


def case(id, names, says, command="render", line=None, check=None, marks=()):
    def deco(fn):
        CASES.append(Case(id, fn, names, says, command, line, check, list(marks)))
        return fn
    return deco


def project(root: Path, yaml_text: str | None = None, manuscript: str | None = None) -> Path:
    return build_project(root, yaml_text=yaml_text, manuscript=manuscript)


def yaml_edit(root: Path, old: str | None = None, new: str = "", append: str = "") -> Path:
    text = BASE_YAML
    if old is not None:
        assert old in text, old
        text = text.replace(old, new, 1)
    return project(root, text + append)


def write_bytes_project(root: Path, name: str, data: bytes) -> Path:
    y = project(root)
    (y.parent / name).write_bytes(data)
    return y


def base_line(needle: str) -> int:
    """1-based line of ``needle`` in the base manifest."""
    return BASE_YAML[: BASE_YAML.index(needle)].count("\n") + 1


END = BASE_YAML.count("\n") + 1   # the first appended line


# --- YAML: malformed, duplicate keys, huge, bombs, tags ---------------------------------------

@case("yaml-syntax", "project.yaml", r"malformed YAML: while parsing a flow sequence", line=2)
def _(root):
    return [yaml_edit(root, "title: Tiny Bell", "title: [Tiny Bell")]


@case("yaml-tab-indent", "project.yaml", r"malformed YAML.*tab|malformed YAML", line=END + 1)
def _(root):
    return [yaml_edit(root, append="extra:\n\tkey: 1\n")]


@case("yaml-duplicate-top-key", "project.yaml", r"duplicate key 'title' \(first at line 1\)", line=END)
def _(root):
    return [yaml_edit(root, append="title: Another Title\n")]


@case("yaml-duplicate-voice", "project.yaml", r"duplicate key 'narrator'", line=base_line("  rosa:"))
def _(root):
    return [yaml_edit(root, "  rosa:\n", "  narrator:\n")]


@case("yaml-huge-manifest", "project.yaml", r"manifest is \d+ bytes \(limit 1000000\)")
def _(root):
    return [yaml_edit(root, append="# " + "x" * 1_100_000 + "\n")]


@case("yaml-alias-bomb", "project.yaml", r"alias expansion bomb")
def _(root):
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return [yaml_edit(root, append="\n".join(lines) + "\n")]


@case("yaml-recursive-alias", "project.yaml", r"recursive YAML alias")
def _(root):
    return [yaml_edit(root, append="loop: &loop [1, *loop]\n")]


def _no_sentinel(root: Path) -> None:
    assert not (root / "PWNED").exists(), "a YAML tag executed code"


@case("yaml-python-object-apply", "project.yaml", r"tag 'tag:yaml.org,2002:python/object/apply:os.system'.*not allowed",
      line=1, check=_no_sentinel)
def _(root):
    return [yaml_edit(root, "title: Tiny Bell",
                      f'title: !!python/object/apply:os.system ["touch {root / "PWNED"}"]')]


@case("yaml-python-name", "project.yaml", r"python/name:os.system.*not allowed", line=1)
def _(root):
    return [yaml_edit(root, "title: Tiny Bell", "title: !!python/name:os.system ''")]


@case("yaml-python-object-mapping", "project.yaml", r"python/object:.*not allowed", line=END)
def _(root):
    return [yaml_edit(root, append="qc2: !!python/object:collections.OrderedDict {a: 1}\n")]


@case("yaml-local-include-tag", "project.yaml", r"tag '!include' is not allowed", line=END)
def _(root):
    return [yaml_edit(root, append="cover: !include /etc/passwd\n")]


@case("yaml-binary-tag", "project.yaml", r"binary.*not allowed", line=1)
def _(root):
    return [yaml_edit(root, "title: Tiny Bell", "title: !!binary aGVsbG8=")]


# --- the manifest file itself -------------------------------------------------------------------

@case("manifest-not-utf8", "project.yaml", r"not UTF-8 text \(byte 0xe9\)", line=1)
def _(root):
    y = project(root)
    y.write_bytes(BASE_YAML.replace("Tiny Bell", "Caf\u00e9 Bell").encode("latin-1"))
    return [y]


@case("manifest-binary", "project.yaml", r"binary file")
def _(root):
    y = project(root)
    y.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    return [y]


@case("manifest-empty", "project.yaml", r"empty manifest")
def _(root):
    y = project(root)
    y.write_bytes(b"")
    return [y]


@case("manifest-top-level-list", "project.yaml", r"must be a mapping, got a list", command="validate")
def _(root):
    y = project(root)
    y.write_text("- title\n- author\n")
    return [y]


@case("manifest-missing", "nothing-here.yaml", r"manifest not found")
def _(root):
    project(root)
    return [root / "tiny-bell" / "nothing-here.yaml"]


@case("manifest-is-directory", "voices", r"is a folder, not a manifest \(give the path of its project.yaml\)",
      command="plan")
def _(root):
    return [project(root).parent / "voices"]


@case("project-folder-given", "tiny-bell", r"is a folder, not a manifest; did you mean .*tiny-bell/project.yaml\?",
      command="validate")
def _(root):
    return [project(root).parent]


# --- wrong types ----------------------------------------------------------------------------------

@case("type-title-mapping", "project.yaml", r"title: must be a string, got a mapping", line=1)
def _(root):
    return [yaml_edit(root, "title: Tiny Bell", "title: {name: Tiny Bell}")]


@case("type-seed-string", "project.yaml", r"seed: must be an integer", line=base_line("seed: 7"))
def _(root):
    return [yaml_edit(root, "seed: 7", 'seed: "seven"')]


@case("type-voices-list", "project.yaml", r"voices: must be a mapping, got a list", command="validate")
def _(root):
    text = BASE_YAML.split("voices:")[0] + "voices: [narrator, rosa]\n"
    return [project(root, text)]


@case("type-formats-number", "project.yaml", r"delivery\.formats: must be a string, got 5")
def _(root):
    return [yaml_edit(root, "formats: [mp3, m4b]", "formats: 5")]


@case("type-max-attempts-float", "project.yaml", r"qc\.max_attempts: must be an integer, got 2\.5")
def _(root):
    return [yaml_edit(root, "max_attempts: 1", "max_attempts: 2.5")]


# --- out-of-range parameters ----------------------------------------------------------------------

@case("range-temperature", "project.yaml", r"sampling\.temperature: must be between", line=END + 1)
def _(root):
    return [yaml_edit(root, append="sampling:\n  temperature: 99\n")]


@case("range-temperature-nan", "project.yaml", r"sampling\.temperature: ", line=END + 1)
def _(root):
    return [yaml_edit(root, append="sampling:\n  temperature: .nan\n")]


@case("type-seed-bool", "project.yaml", r"seed: must be an integer, got True", line=base_line("seed: 7"))
def _(root):
    return [yaml_edit(root, "seed: 7", "seed: yes")]


@case("range-mp3-bitrate", "project.yaml", r"delivery\.mp3_bitrate_kbps: must be between 32 and 320, got 8")
def _(root):
    return [yaml_edit(root, "profile: podcast", "profile: podcast\n  mp3_bitrate_kbps: 8")]


@case("range-segmenting-inverted", "project.yaml", r"segmenting\.max_seconds: must be larger than min_seconds")
def _(root):
    return [yaml_edit(root, "min_seconds: 1", "min_seconds: 10")]


@case("range-cfg-scale-huge", "project.yaml", r"sampling\.cfg_scale: must be between", command="plan")
def _(root):
    return [yaml_edit(root, append="sampling:\n  cfg_scale: 1000000000.0\n")]


@case("range-cli-batch-size", "--batch-size", r"must be (at least|>=) ?1")
def _(root):
    return [project(root), "--batch-size", "-3"]


@case("range-cli-chapters", "chapters", r"chapter 9 does not exist \(the manuscript has 2 chapters\)")
def _(root):
    return [project(root), "--chapters", "9"]


# --- unknown keys ---------------------------------------------------------------------------------

@case("unknown-top-key", "project.yaml", r"titel: unknown key \(did you mean 'title'\?\)", line=END)
def _(root):
    return [yaml_edit(root, append="titel: Typo\n")]


@case("unknown-voice-key", "project.yaml", r"voices\.narrator\.refrence: unknown key \(did you mean 'reference'\?\)")
def _(root):
    return [yaml_edit(root, "    reference: voices/narrator.wav", "    refrence: voices/narrator.wav")]


@case("unknown-delivery-key", "project.yaml", r"delivery\.format: unknown key \(did you mean 'formats'\?\)")
def _(root):
    return [yaml_edit(root, "profile: podcast", "profile: podcast\n  format: mp3")]


# --- missing and unreadable files -------------------------------------------------------------------

@case("missing-manuscript", "project.yaml", r"manuscript: file not found: chapter-99\.md", line=base_line("manuscript:"))
def _(root):
    return [yaml_edit(root, "manuscript: manuscript.md", "manuscript: chapter-99.md")]


@case("missing-reference", "project.yaml", r"voices\.narrator\.reference: file not found: voices/nobody\.wav")
def _(root):
    return [yaml_edit(root, "voices/narrator.wav", "voices/nobody.wav")]


@case("manuscript-is-directory", "project.yaml", r"manuscript: not a regular file: voices")
def _(root):
    return [yaml_edit(root, "manuscript: manuscript.md", "manuscript: voices")]


@case("cover-is-fifo", "project.yaml", r"cover: not a regular file: cover\.jpg")
def _(root):
    y = yaml_edit(root, append="cover: cover.jpg\n")
    os.mkfifo(y.parent / "cover.jpg")   # reading it would block forever
    return [y]


@case("manuscript-dangling-symlink", "project.yaml", r"manuscript: file not found: manuscript\.md")
def _(root):
    y = project(root)
    (y.parent / "manuscript.md").unlink()
    (y.parent / "manuscript.md").symlink_to(y.parent / "deleted.md")
    return [y]


@case("manuscript-symlink-loop", "project.yaml", r"manuscript: cannot resolve path 'manuscript\.md': symlink loop")
def _(root):
    y = project(root)
    ms = y.parent / "manuscript.md"
    ms.unlink()
    ms.symlink_to(ms)
    return [y]


@case("manuscript-unreadable", "manuscript.md", r"cannot read manuscript: Permission denied",
      marks=[pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")])
def _(root):
    y = project(root)
    (y.parent / "manuscript.md").chmod(0)
    return [y]


# --- audio that is not audio ------------------------------------------------------------------------

def _ref_case(root: Path, data: bytes, name: str = "narrator.wav") -> list:
    y = project(root, BASE_YAML.replace("voices/narrator.wav", f"voices/{name}"))
    (y.parent / "voices" / name).write_bytes(data)
    return [y]


@case("reference-text-file", "project.yaml", r"voices\.narrator\.reference: cannot read audio file")
def _(root):
    return _ref_case(root, b"this is not audio, just words\n" * 20)


@case("reference-png", "project.yaml", r"voices\.narrator\.reference: cannot read audio file", command="validate")
def _(root):
    return _ref_case(root, b"\x89PNG\r\n\x1a\n" + os.urandom(2048), "narrator.flac")


@case("reference-truncated-wav", "project.yaml", r"voices\.narrator\.reference: cannot read audio file")
def _(root):
    from .fixture import reference_wav_bytes
    return _ref_case(root, reference_wav_bytes()[:40])


@case("reference-truncated-mp3", "project.yaml", r"voices\.narrator\.reference: reference is 0\.\d s long but its transcript has \d+ characters.*truncated audio")
def _(root):
    from .fixture import reference_wav_bytes
    src = root / "full.wav"
    root.mkdir(parents=True, exist_ok=True)
    src.write_bytes(reference_wav_bytes())
    mp3 = subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(src), "-f", "mp3", "-"],
                         check=True, capture_output=True).stdout
    return _ref_case(root, mp3[:300], "narrator.mp3")


@case("reference-truncated-wav-data", "project.yaml",
      r"voices\.narrator\.reference: truncated WAV: the header declares \d+ bytes of audio, the file has \d+")
def _(root):
    from .fixture import reference_wav_bytes
    data = reference_wav_bytes()
    return _ref_case(root, data[: len(data) * 2 // 3])


@case("reference-zero-length", "project.yaml", r"voices\.narrator\.reference: (cannot read audio file|audio file is empty)")
def _(root):
    return _ref_case(root, b"")


def _flac_claiming(seconds: float) -> bytes:
    """A real 1 s FLAC whose STREAMINFO says it lasts ``seconds`` (what readers report as length)."""
    flac = subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
                           "sine=frequency=220:sample_rate=8000:duration=1", "-ac", "1", "-f", "flac", "-"],
                          check=True, capture_output=True).stdout
    assert flac[:4] == b"fLaC" and flac[4] & 0x7F == 0   # first block is STREAMINFO
    off = 8 + 10                                          # sample rate|channels|bps|total samples
    (word,) = struct.unpack(">Q", flac[off:off + 8])
    word = (word & ~((1 << 36) - 1)) | int(seconds * 8000)
    return flac[:off] + struct.pack(">Q", word) + flac[off + 8:]


@case("reference-ten-hours", "project.yaml", r"reference is 36000\.0 s long \(limit 60 s")
def _(root):
    return _ref_case(root, _flac_claiming(10 * 3600), "narrator.flac")


@case("reference-over-prompt-budget", "project.yaml", r"voice prompt needs \d+ decoder frames")
def _(root):
    import numpy as np
    import soundfile as sf
    y = project(root, BASE_YAML.replace("voices/narrator.wav", "voices/long.wav"))
    t = np.arange(25 * 16000) / 16000
    sf.write(y.parent / "voices" / "long.wav", (0.1 * np.sin(2 * np.pi * 200 * t)).astype("float32"), 16000)
    return [y]


@case("reference-digital-silence", "project.yaml", r"voices\.narrator\.reference: reference is digital silence",
      command="validate")
def _(root):
    import numpy as np
    import soundfile as sf
    y = project(root)
    sf.write(y.parent / "voices" / "narrator.wav", np.zeros(5 * 16000, np.int16), 16000, subtype="PCM_16")
    return [y]


# --- budgets: the voice prompt against max_new_tokens (named at validate, not as a word at plan) -----

@case("max-new-tokens-under-reference", "project.yaml",
      r"voices\.narrator\.reference: the reference clip \(\d+\.\d s\) needs \d+ decoder frames of the 484 available "
      r"with max_new_tokens 500, leaving \w+ for text.*set by sampling\.max_new_tokens at line " + str(END + 1),
      command="validate", line=base_line("    reference: voices/narrator.wav"))
def _(root):
    return [yaml_edit(root, append="sampling:\n  max_new_tokens: 500\n")]


@case("max-new-tokens-under-reference-voice", "project.yaml",
      r"voices\.narrator\.sampling\.max_new_tokens: the reference clip .* needs \d+ decoder frames of the 484 available",
      command="plan", line=base_line("    draft_voice: en-us+m3") + 1)
def _(root):
    return [yaml_edit(root, "    draft_voice: en-us+m3\n", "    draft_voice: en-us+m3\n    sampling: {max_new_tokens: 500}\n")]


# --- delivery settings that validated but failed at export -------------------------------------------

@case("pcm-bits-32", "project.yaml", r"delivery\.pcm_bits: must be 16 or 24, got 32")
def _(root):
    return [yaml_edit(root, "profile: podcast", "profile: podcast\n  pcm_bits: 32")]


# --- covers: decoded at validation, not found broken by the M4B step at the end -----------------------

def _cover_case(root: Path, name: str, data: bytes) -> list:
    y = yaml_edit(root, append=f"cover: {name}\n")
    (y.parent / name).write_bytes(data)
    return [y]


@case("cover-random-bytes", "project.yaml", r"cover: not a JPEG or PNG image", line=END)
def _(root):
    return _cover_case(root, "cover.jpg", os.urandom(8192))


@case("cover-empty", "project.yaml", r"cover: not a JPEG or PNG image \(an empty file\)", line=END, command="validate")
def _(root):
    return _cover_case(root, "cover.jpg", b"")


@case("cover-svg", "project.yaml", r"cover: not a JPEG or PNG image \(an SVG or other text file\)", line=END)
def _(root):
    return _cover_case(root, "cover.svg", b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>\n')


@case("cover-gif-6-bytes", "project.yaml", r"cover: not a JPEG or PNG image", line=END, command="validate")
def _(root):
    return _cover_case(root, "cover.gif", b"GIF89a")


@case("cover-truncated-jpeg", "project.yaml", r"cover: cannot decode the JPEG .*truncated or corrupt", line=END)
def _(root):
    import io
    from PIL import Image
    buf = io.BytesIO()
    Image.effect_noise((800, 800), 40).convert("RGB").save(buf, "JPEG")
    return _cover_case(root, "cover.jpg", buf.getvalue()[:4000])


# --- manuscripts ------------------------------------------------------------------------------------

def _ms_case(root: Path, data: bytes) -> list:
    y = project(root)
    (y.parent / "manuscript.md").write_bytes(data)
    return [y]


@case("manuscript-latin1", "manuscript.md", r"not UTF-8 text \(byte 0xe9\)", line=3)
def _(root):
    return _ms_case(root, "# One\n\nThe caf\u00e9 was closed.\n".encode("latin-1"))


@case("manuscript-binary", "manuscript.md", r"binary file \(NUL bytes\)")
def _(root):
    return _ms_case(root, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + os.urandom(512))


@case("manuscript-utf16", "manuscript.md", r"UTF-16 text", command="validate")
def _(root):
    return _ms_case(root, "# One\n\nHello there.\n".encode("utf-16"))


@case("manuscript-docx", "manuscript.md", r"ZIP-based file")
def _(root):
    return _ms_case(root, b"PK\x03\x04" + os.urandom(256))


@case("manuscript-zero-length", "manuscript.md", r"manuscript has no text")
def _(root):
    return _ms_case(root, b"")


@case("manuscript-too-large", "manuscript.md", r"manuscript is \d+ bytes \(limit 67108864\)")
def _(root):
    y = project(root)
    with open(y.parent / "manuscript.md", "r+b") as f:   # sparse: no 65 MB actually written
        f.truncate(65 * 1024 * 1024)
    return [y]


@case("manuscript-empty-chapter", "manuscript.md", r"empty chapter 'One'", line=1)
def _(root):
    return _ms_case(root, b"# One\n\n# Two\n\nSome text here.\n")


@case("manuscript-control-char", "manuscript.md", r"control character U\+0007", line=3)
def _(root):
    return _ms_case(root, b"# One\n\nA bell \x07 rang.\n")


@case("manuscript-unknown-speaker", "manuscript.md", r"unknown speaker 'ZED'", line=3)
def _(root):
    return _ms_case(root, b"# One\n\nZED: Who goes there?\n")


@case("manuscript-line-over-budget", "manuscript.md", r"line is 100001 characters long", line=3)
def _(root):
    return _ms_case(root, b"# One\n\n" + b"a" * 100_001 + b"\n")


@case("manuscript-word-over-budget", "manuscript.md", r"a word of \d+ characters cannot fit in one Dia generation",
      command="plan")
def _(root):
    return _ms_case(root, b"# One\n\nThe word " + b"x" * 4000 + b" is long.\n")


@case("manuscript-raw-tag-midline", "manuscript.md", r"\[S1\]/\[S2\] speaker tags belong only at the start", line=3)
def _(root):
    return _ms_case(root, b"# One\n\nThe bell [S2] rang.\n")


# --- text over the prompt budgets -------------------------------------------------------------------

@case("transcript-over-budget", "project.yaml", r"voices\.narrator\.transcript: too long \(\d+ characters, limit 900\)")
def _(root):
    return [yaml_edit(root, f'transcript: "{REFERENCE_TRANSCRIPT}"', 'transcript: "' + "word " * 300 + '"')]


@case("calibration-over-budget", "project.yaml", r"voices\.rosa\.calibration_text: too long \(\d+ characters, limit 300\)")
def _(root):
    return [yaml_edit(root, '"Mind the step there, the rope is wet."', '"' + "Mind the step. " * 30 + '"')]


@case("title-control-chars", "project.yaml", r"title: contains control characters", line=1)
def _(root):
    return [yaml_edit(root, "title: Tiny Bell", 'title: "Tiny\\x07Bell"')]


# --- unknown speakers and voices --------------------------------------------------------------------

@case("character-unknown-voice", "project.yaml", r"characters\.ROSA: voice 'ghost' is not defined", line=base_line("  ROSA:"))
def _(root):
    return [yaml_edit(root, "ROSA: rosa", "ROSA: ghost")]


@case("narrator-voice-unknown", "project.yaml", r"narrator_voice: voice 'ghost' is not defined")
def _(root):
    return [yaml_edit(root, "narrator_voice: narrator", "narrator_voice: ghost")]


@case("raw-slot-unknown-voice", "project.yaml", r"raw_slots\.S2: voice 'ghost' is not defined")
def _(root):
    return [yaml_edit(root, append="raw_slots:\n  S2: ghost\n")]


@case("reference-without-transcript", "project.yaml", r"voices\.narrator\.transcript: a voice with a reference needs")
def _(root):
    return [yaml_edit(root, f'    transcript: "{REFERENCE_TRANSCRIPT}"\n', "")]


@case("seed-only-voice-without-seed", "project.yaml", r"voices\.rosa\.seed: a seed-only voice needs a seed")
def _(root):
    return [yaml_edit(root, "    seed: 99\n", "")]


@case("draft-voice-injection", "project.yaml", r"voices\.rosa\.draft_voice: not an espeak-ng voice name")
def _(root):
    return [yaml_edit(root, "draft_voice: en-us+f3", 'draft_voice: "en; rm -rf /"')]


# --- path escapes -----------------------------------------------------------------------------------

def _outside(root: Path, name: str = "outside.md") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    p = root / name
    p.write_text("# Secret\n\nSomebody else's text.\n")
    return p


@case("escape-manuscript-dotdot", "project.yaml", r"manuscript: path '\.\./outside\.md' escapes the project directory")
def _(root):
    _outside(root)
    return [yaml_edit(root, "manuscript: manuscript.md", "manuscript: ../outside.md")]


@case("escape-manuscript-absolute", "project.yaml", r"manuscript: path '/etc/hostname' escapes the project directory")
def _(root):
    return [yaml_edit(root, "manuscript: manuscript.md", "manuscript: /etc/hostname")]


@case("escape-manuscript-home", "project.yaml", r"manuscript: path '~/notes\.md' escapes the project directory")
def _(root):
    return [yaml_edit(root, "manuscript: manuscript.md", "manuscript: ~/notes.md")]


@case("escape-reference-symlink", "project.yaml", r"voices\.narrator\.reference: path 'voices/narrator\.wav' escapes")
def _(root):
    from .fixture import reference_wav_bytes
    secret = root / "secret.wav"
    root.mkdir(parents=True, exist_ok=True)
    secret.write_bytes(reference_wav_bytes())
    y = project(root)
    (y.parent / "voices" / "narrator.wav").unlink()
    (y.parent / "voices" / "narrator.wav").symlink_to(secret)
    return [y]


@case("escape-manuscript-symlinked-dir", "project.yaml", r"manuscript: path 'texts/outside\.md' escapes")
def _(root):
    _outside(root)
    y = yaml_edit(root, "manuscript: manuscript.md", "manuscript: texts/outside.md")
    (y.parent / "texts").symlink_to(root)
    return [y]


@case("escape-cover-absolute", "project.yaml", r"cover: path '/etc/passwd' escapes the project directory")
def _(root):
    return [yaml_edit(root, append="cover: /etc/passwd\n")]


@case("escape-output-dir", "project.yaml", r"output_dir: path '\.\./\.\./elsewhere' escapes the project directory")
def _(root):
    return [yaml_edit(root, append="output_dir: ../../elsewhere\n")]


@case("escape-model-dir", "project.yaml", r"model: path '\.\./shared-weights' escapes the project directory", line=END)
def _(root):
    (root / "shared-weights").mkdir(parents=True)
    (root / "shared-weights" / "config.json").write_text("{}")
    return [yaml_edit(root, append="model: ../shared-weights\n")]


# --- publishing: podcast: and acx: sections (issue 16) ---------------------------------------------

PODCAST_SECTION = """\
podcast:
  show: Tiny Show
  description: A show.
  link: https://example.com/show
  owner:
    name: Owner
    email: owner@example.com
  categories: [Arts]
  pub_date: 2026-11-30
  base_url: https://example.com/show/ep1/
"""


def _podcast(root: Path, old: str | None = None, new: str = "") -> list:
    section = PODCAST_SECTION if old is None else PODCAST_SECTION.replace(old, new, 1)
    return [yaml_edit(root, append=section)]


@case("podcast-base-url-not-http", "project.yaml", r"podcast\.base_url: must be an http\(s\) URL, got 'ftp:",
      line=END + 9)
def _(root):
    return _podcast(root, "base_url: https://example.com/show/ep1/", "base_url: ftp://example.com/show/ep1/")


@case("podcast-owner-email-missing", "project.yaml", r"podcast\.owner\.email: required key missing", line=END + 4)
def _(root):
    return _podcast(root, "    email: owner@example.com\n", "")


@case("podcast-image-not-an-image", "project.yaml", r"podcast\.image: not a JPEG or PNG image", line=END + 10)
def _(root):
    y = _podcast(root, "base_url: https://example.com/show/ep1/\n",
                 "base_url: https://example.com/show/ep1/\n  image: art.png\n")
    (root / "tiny-bell" / "art.png").write_text("<svg>not a raster image</svg>")
    return y


@case("acx-retail-sample-outside-chapter", "project.yaml",
      r"acx\.retail_sample\.start_s: starts at 500 s, outside chapter 2", line=END + 3)
def _(root):
    return [yaml_edit(root, "profile: podcast", "profile: acx",
                      append="acx:\n  retail_sample:\n    chapter: 2\n    start_s: 500\n    duration_s: 60\n")]


# --- the runner -------------------------------------------------------------------------------------

@dataclass
class Outcome:
    root: Path
    out: Path
    rc: int
    stderr: str
    error: BaseException | None = None


def _run_case(c: Case, root: Path) -> Outcome:
    out = root / "OUT"
    try:
        args = c.build(root)
    except BaseException as e:  # reported by the test, not the fixture
        return Outcome(root, out, -1, "", e)
    target, extra = args[0], [str(a) for a in args[1:]]
    if c.command == "render":
        cli = ["render", target, "--draft", "--out", out, "--no-progress", *extra]
    else:
        cli = [c.command, target, *extra]
    r = run_cli(cli, base_env(root), timeout=60)
    return Outcome(root, out, r.rc, r.stderr)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, Outcome]:
    base = tmp_path_factory.mktemp("bad-input")
    todo = [c for c in CASES if not any(m.name == "skipif" and m.args[0] for m in c.marks)]
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {c.id: pool.submit(_run_case, c, base / c.id) for c in todo}
        return {k: f.result() for k, f in futures.items()}


def test_corpus_is_big_enough():
    assert len({c.id for c in CASES}) == len(CASES), "duplicate case ids"
    assert len(CASES) >= 40


@pytest.mark.parametrize("c", [pytest.param(c, id=c.id, marks=c.marks) for c in CASES])
def test_bad_input(c: Case, outcomes):
    o = outcomes[c.id]
    if o.error is not None:
        raise o.error
    assert o.rc == 2, f"rc {o.rc}, stderr:\n{o.stderr}"
    assert "Traceback" not in o.stderr, o.stderr
    lines = o.stderr.splitlines()
    assert len(lines) == 1 and lines[0].strip(), f"expected one line on stderr, got:\n{o.stderr}"
    msg = lines[0]
    assert msg.startswith("error: "), msg
    assert c.names in msg, f"message does not name {c.names!r}: {msg}"
    assert re.search(c.says, msg, re.IGNORECASE), f"message does not say {c.says!r}: {msg}"
    if c.line is not None:
        assert re.search(rf"{re.escape(c.names)}:{c.line}: ", msg), f"expected line {c.line}: {msg}"
    assert not o.out.exists() or not any(o.out.iterdir()), f"files written to --out: {list(o.out.rglob('*'))}"
    if c.check:
        c.check(o.root)
