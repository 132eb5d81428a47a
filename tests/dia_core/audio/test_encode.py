import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dia_core import audiofile as io
from dia_core.atomic import clean_temps
from dia_core.audio.m4b import escape_ffmetadata, export_m4b, ffmetadata
from dia_core.audio.encode import FFmpegError, export_chapter, to_pcm
from dia_core.settings import DeliverySettings
from dia_core.errors import InputError

from .conftest import SR, speechlike

ROOT = Path(__file__).resolve().parents[3]


def test_chapter_formats_codecs_and_bit_depth(tmp_path):
    x = speechlike(2.0)
    s = DeliverySettings(profile="podcast", formats=("wav", "flac", "mp3", "m4b"))
    out = export_chapter(x, tmp_path / "01.intro", s, tags={"title": "Intro"})
    assert set(out) == {"wav", "flac", "mp3"}
    assert out["wav"].name == "01.intro.wav"
    assert sf.info(str(out["wav"])).subtype == "PCM_24"
    assert sf.info(str(out["flac"])).subtype == "PCM_24"
    mp3 = io.probe(out["mp3"])["streams"][0]
    assert (mp3["codec_name"], mp3["sample_rate"], mp3["channels"], mp3["bit_rate"]) == ("mp3", "44100", 1, "192000")
    # 24-bit PCM keeps the float signal to within 1 LSB
    y = io.read_audio(out["wav"])
    assert np.abs(y - x).max() <= 1.5 / 2 ** 23
    assert np.abs(io.read_audio(out["flac"]) - x).max() <= 1.5 / 2 ** 23
    assert not list(tmp_path.glob(".tmp-*"))


def test_16_bit_uses_tpdf_dither():
    x = np.full(SR, 0.3 / 32768, np.float32)          # 0.3 LSB: plain rounding would give all zeros
    data, width = to_pcm(x, 16, seed=1)
    q = np.frombuffer(data, "<i2")
    assert width == 2 and q.std() > 0.3
    assert q.mean() == pytest.approx(0.3, abs=0.02)   # dither keeps the average (no truncation bias)
    assert set(np.unique(q)) <= {-1, 0, 1, 2}
    with pytest.raises(InputError):
        to_pcm(x, 20)


def test_ffmetadata_escaping():
    assert escape_ffmetadata("a=b;c#d\\e\nf") == "a\\=b\\;c\\#d\\\\e\\\nf"
    text = ffmetadata({"title": "T=1", "genre": None}, [(0, 1234, "One"), (1234, 2000, "Two;")])
    assert text.startswith(";FFMETADATA1\ntitle=T\\=1\n")
    assert "genre" not in text
    assert text.count("[CHAPTER]") == 2 and text.count("TIMEBASE=1/1000") == 2
    assert "START=1234\nEND=2000\ntitle=Two\\;" in text


def test_m4b_chapters_tags_cover(tmp_path):
    cover = tmp_path / "cover.png"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "color=c=red:s=32x32", "-frames:v", "1",
                    str(cover)], check=True)
    lengths = [1.5, 2.25, 0.8, 3.1]
    chapters = [speechlike(d, seed=i, lead=0, trail=0) for i, d in enumerate(lengths)]
    io.write_wav_float(chapters[0], tmp_path / "c0.wav")
    export_chapter(chapters[1], tmp_path / "c1", DeliverySettings(formats=("flac",)))
    items = [tmp_path / "c0.wav", tmp_path / "c1.flac", chapters[2], chapters[3]]
    titles = ["Opening Credits", "Chapter 1: A=B; #1", "Chapter 2", "The End"]
    path, bounds = export_m4b(items, titles, tmp_path / "book.m4b",
                              {"title": "Book", "author": "Ann Author", "narrator": "Ned", "genre": None},
                              cover=cover)
    info = io.probe(path)
    chs = info["chapters"]
    assert [c["tags"]["title"] for c in chs] == titles
    expected = np.concatenate([[0], np.cumsum([len(c) for c in chapters])]) / SR
    for c, start, end, b in zip(chs, expected[:-1], expected[1:], bounds):
        assert abs(float(c["start_time"]) - start) <= 0.020
        assert abs(float(c["end_time"]) - end) <= 0.020
        assert b == (round(start * 1000), round(end * 1000))
    tags = info["format"]["tags"]
    assert (tags["title"], tags["artist"], tags["album"], tags["composer"], tags["genre"]) == \
        ("Book", "Ann Author", "Book", "Ned", "Audiobook")
    kinds = {(s["codec_type"], s["codec_name"]) for s in info["streams"]}
    assert ("audio", "aac") in kinds and ("video", "png") in kinds
    assert abs(float(info["format"]["duration"]) - expected[-1]) < 0.1
    assert not list(tmp_path.glob(".tmp-*"))


def test_m4b_input_errors(tmp_path):
    with pytest.raises(InputError):
        export_m4b([speechlike(0.5)], ["a", "b"], tmp_path / "b.m4b")
    with pytest.raises(InputError):
        export_m4b([speechlike(0.5)], ["a"], tmp_path / "b.m4b", cover=tmp_path / "missing.jpg")
    assert not (tmp_path / "b.m4b").exists()


CHILD = r"""
import sys, numpy as np
from pathlib import Path
from dia_core.audio.encode import export_chapter
from dia_core.settings import DeliverySettings
x = (np.random.default_rng(0).standard_normal(44100 * 600) * 0.05).astype(np.float32)
export_chapter(x, Path(sys.argv[1]) / "ch01", DeliverySettings(formats=("mp3",)), correct_lossy_gain=False)
print("done", flush=True)
"""


def _ffmpeg_children(pid):
    kids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            comm = stat[stat.index("(") + 1: stat.rindex(")")]
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            if ppid == pid and comm == "ffmpeg":
                kids.append(int(d.name))
    return kids


def test_kill_midway_leaves_no_final_file(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(out)], cwd=ROOT, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    try:
        while time.time() < deadline and proc.poll() is None and not _ffmpeg_children(proc.pid):
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()[-500:]
        assert _ffmpeg_children(proc.pid), "ffmpeg never started"
        time.sleep(0.3)
        os.killpg(proc.pid, signal.SIGKILL)          # the export's own process group (python + ffmpeg)
    finally:
        stdout = proc.communicate(timeout=30)[0]
    assert proc.returncode == -signal.SIGKILL
    assert b"done" not in stdout                    # it really was interrupted
    assert not (out / "ch01.mp3").exists()
    temps = list(out.glob(".tmp-*"))
    assert all(p.name.startswith(".tmp-ch01-") for p in temps)
    assert sorted(clean_temps(out)) == sorted(temps)
    assert list(out.iterdir()) == []


def test_clean_temps_keeps_finished_and_young_files(tmp_path):
    (tmp_path / "sub").mkdir()
    keep = tmp_path / "ch01.mp3"
    keep.write_bytes(b"x")
    old = tmp_path / "sub" / ".tmp-ch02-abc.mp3"
    old.write_bytes(b"x")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    young = tmp_path / ".tmp-ch03-def.mp3"
    young.write_bytes(b"x")
    assert clean_temps(tmp_path, min_age_s=60) == [old]
    assert keep.exists() and young.exists() and not old.exists()


# ------------------------------------------------------------------ ffmpeg's own error, not "Broken pipe"

def _fake_ffmpeg(tmp_path: Path, monkeypatch, stderr: str) -> Path:
    """An ``ffmpeg`` first on PATH that reads none of its input, says ``stderr`` and exits 1 (what the
    real one does when its output disk is full)."""
    bindir = tmp_path / "fakebin"
    bindir.mkdir()
    exe = bindir / "ffmpeg"
    exe.write_text(f"#!/bin/sh\necho '{stderr}' >&2\nexit 1\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return exe


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3"])
def test_full_disk_is_reported_as_enospc_not_broken_pipe(tmp_path, monkeypatch, fmt):
    """ffmpeg quitting on a full disk while the PCM is still being piped: the error is ffmpeg's
    ("No space left on device", errno ENOSPC, naming the file), not the BrokenPipeError of the write."""
    out = tmp_path / "out"
    out.mkdir()
    _fake_ffmpeg(tmp_path, monkeypatch, "Error writing trailer of x: No space left on device")
    x = speechlike(30.0)                        # 5 MB of PCM: far more than the pipe holds
    with pytest.raises(OSError) as ei:
        export_chapter(x, out / "ch01", DeliverySettings(formats=(fmt,)), correct_lossy_gain=False)
    e = ei.value
    assert not isinstance(e, BrokenPipeError)
    assert e.errno == errno.ENOSPC and e.strerror == "No space left on device"
    assert e.filename == str(out / f"ch01.{fmt}")  # the file being made (its temp name is gone)
    assert any("No space left on device" in n for n in getattr(e, "__notes__", []))
    assert _leftovers(out) == []                # the temp file is gone, nothing published


def test_m4b_full_disk_is_reported_as_enospc_not_broken_pipe(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    _fake_ffmpeg(tmp_path, monkeypatch, "av_interleaved_write_frame(): No space left on device")
    with pytest.raises(OSError) as ei:
        export_m4b([speechlike(20.0), speechlike(20.0, seed=1)], ["One", "Two"], out / "book.m4b")
    assert not isinstance(ei.value, BrokenPipeError)
    assert ei.value.errno == errno.ENOSPC and ei.value.filename == str(out / "book.m4b")
    assert _leftovers(out) == []


def test_other_ffmpeg_failures_carry_its_stderr(tmp_path, monkeypatch):
    _fake_ffmpeg(tmp_path, monkeypatch, "Unknown encoder libmp3lame")
    with pytest.raises(FFmpegError, match="ffmpeg mp3 encode failed: Unknown encoder libmp3lame") as ei:
        export_chapter(speechlike(10.0), tmp_path / "ch01", DeliverySettings(formats=("mp3",)),
                       correct_lossy_gain=False)
    assert ei.value.returncode == 1 and "Unknown encoder" in ei.value.stderr


FSIZE_CHILD = r"""
import errno, resource, sys
import numpy as np
from pathlib import Path
from dia_core.audio.encode import export_chapter
from dia_core.audio.m4b import export_m4b
from dia_core.settings import DeliverySettings
resource.setrlimit(resource.RLIMIT_FSIZE, (400_000, 400_000))
x = (np.random.default_rng(0).standard_normal(44100 * 20) * 0.05).astype(np.float32)
for what, run in (("wav", lambda: export_chapter(x, Path(sys.argv[1]) / "ch01", DeliverySettings(formats=("wav",)))),
                  ("m4b", lambda: export_m4b([x, x], ["a", "b"], Path(sys.argv[1]) / "book.m4b", bitrate_kbps=320))):
    try:
        run()
        print(what, "no error")
    except BrokenPipeError as e:
        print(what, "BrokenPipeError", e)
    except OSError as e:
        print(what, errno.errorcode.get(e.errno), e.strerror)
"""


def test_real_ffmpeg_write_failure_is_its_own_error(tmp_path):
    """The real ffmpeg hitting a file-size limit (RLIMIT_FSIZE, no root needed) mid-stream, killed by
    SIGXFSZ while audio is still being piped to it: the export raises OSError(EFBIG) naming the
    file, for the chapter and the M4B encode (the old code raised BrokenPipeError / pydub's error)."""
    out = tmp_path / "out"
    out.mkdir()
    r = subprocess.run([sys.executable, "-c", FSIZE_CHILD, str(out)], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.splitlines() == ["wav EFBIG File too large", "m4b EFBIG File too large"], r.stdout
    assert _leftovers(out) == []


def test_pcm_bits_outside_settings_list_fails_before_any_file(tmp_path):
    """settings.PCM_BITS is the one list: 32 is refused by the encoder up front (and by the manifest)."""
    from dia_core.settings import PCM_BITS
    assert PCM_BITS == (16, 24)
    with pytest.raises(InputError, match="must be 16 or 24, got 32") as ei:
        export_chapter(speechlike(0.5), tmp_path / "ch01", DeliverySettings(formats=("wav", "flac"), pcm_bits=32))
    assert ei.value.field == "delivery.pcm_bits"
    assert list(tmp_path.iterdir()) == []
    out = export_chapter(speechlike(0.5), tmp_path / "ch01", DeliverySettings(formats=("wav", "flac"), pcm_bits=16))
    assert sf.info(str(out["wav"])).subtype == "PCM_16" and sf.info(str(out["flac"])).subtype == "PCM_16"


def test_mp3_level_correction_is_predicted_from_an_excerpt(tmp_path, monkeypatch):
    """A chapter longer than the excerpt: one full-length MP3 encode (plus the short excerpt's),
    the FLAC at the same time, and the decoded MP3 on the profile's RMS target within 0.1 dB,
    where the uncorrected encode reads lower."""
    from dia_core.audio import dynamics, encode, profiles

    s = DeliverySettings(profile="acx", formats=("mp3", "flac"))
    x = np.concatenate([speechlike(7.0, seed=i, f0=110 + 9 * i) for i in range(14)])   # ~100 s
    y, _ = dynamics.finish(x, s)
    calls = []
    real = encode._encode
    monkeypatch.setattr(encode, "_encode", lambda audio, path, fmt, *a, **k: (
        calls.append((fmt, len(audio), k.get("gain_db", 0.0))), real(audio, path, fmt, *a, **k))[1])
    files = export_chapter(y, tmp_path / "c", s)
    full_mp3 = [c for c in calls if c[0] == "mp3" and c[1] == len(y)]
    excerpt = [c for c in calls if c[0] == "mp3" and c[1] < len(y) / 2]
    assert len(full_mp3) == 1 and len(excerpt) == 1 and full_mp3[0][2] > 0.1, calls
    assert [c for c in calls if c[0] == "flac"] == [("flac", len(y), 0.0)]
    corrected = profiles.check_file(files["mp3"], s).measurements.rms_db
    plain = profiles.check_file(export_chapter(y, tmp_path / "p", DeliverySettings(profile="acx", formats=("mp3",)),
                                               correct_lossy_gain=False)["mp3"], s).measurements.rms_db
    assert abs(corrected - (-20.0)) <= 0.1 < abs(plain - (-20.0)), (corrected, plain)
    assert sf.info(str(files["flac"])).frames == len(y)
