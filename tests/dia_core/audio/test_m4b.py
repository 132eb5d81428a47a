"""The M4B checked after writing: container facts against the plan, decoded audio against the profile,
and the one peak-correcting re-encode when the AAC encode pushes a chapter over the limit."""
import subprocess

import jsonschema
import numpy as np
import pytest

from dia_core.audio import dynamics, meter
from dia_core import audiofile as io
from dia_core.production import manifests as manifest
from dia_core.audio.m4b import MARK_TOLERANCE_MS, PEAK_MARGIN_DB, export_m4b, export_m4b_checked, verify_m4b
from dia_core.settings import DeliverySettings

from .conftest import SR, speechlike

ACX = DeliverySettings()                       # acx: RMS -23..-18, sample peak <= -3 dBFS, ...
PODCAST = DeliverySettings(profile="podcast")  # -16 LUFS +/-1, true peak <= -1 dBTP
TITLES = ["Opening Credits", "Chapter 1: A=B; #1", "The End"]
TAGS = {"title": "Book", "author": "Ann Author", "narrator": "Ned"}


def _chapter(seconds: float, seed: int, settings: DeliverySettings, gain_db: float = 0.0) -> np.ndarray:
    """A finished chapter: speech-like tone between ACX room tone (0.7 s head, 1.5 s tail, -72 dB),
    normalized to the profile, then ``gain_db`` (64 kbps AAC raises these peaks by up to 1 dB, so
    the good masters sit 1 dB under the target: peaks at -4.5 dBTP or lower)."""
    x = speechlike(seconds, seed=seed, f0=120 + 30 * seed, lead=0.7, trail=1.5)
    x = x + np.random.default_rng(seed).standard_normal(len(x)).astype(np.float32) * np.float32(io.undb(-72))
    y, _ = dynamics.finish(x, settings)
    return (y * np.float32(io.undb(gain_db))).astype(np.float32)


@pytest.fixture(scope="module")
def acx_chapters():
    return [_chapter(d, i, ACX, -1.0) for i, d in enumerate((2.5, 3.0, 2.0))]


@pytest.fixture(scope="module")
def cover(tmp_path_factory):
    path = tmp_path_factory.mktemp("cover") / "cover.png"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "color=c=blue:s=32x32", "-frames:v", "1",
                    str(path)], check=True)
    return path


def _burst(x: np.ndarray, peak_db: float, at_s: float = 1.2) -> np.ndarray:
    """``x`` with 50 ms of Hann-windowed 1 kHz sine peaking at ``peak_db`` dBFS inside the speech:
    a hot peak that hardly moves the loudness."""
    y = x.copy()
    n = int(0.05 * SR)
    i = int(at_s * SR)
    y[i:i + n] = (io.undb(peak_db) * np.hanning(n) * np.sin(2 * np.pi * 1000 * np.arange(n) / SR)).astype(np.float32)
    return y


def _book_check_validator():
    schema = manifest.load_schema(manifest.PROJECT_SCHEMA)
    return jsonschema.Draft202012Validator({"$defs": schema["$defs"], "$ref": "#/$defs/book_check"})


def test_good_m4b_passes_every_check(tmp_path, acx_chapters, cover):
    io.write_wav_float(acx_chapters[0], tmp_path / "c0.wav")       # masters may be files or arrays
    items = [tmp_path / "c0.wav", acx_chapters[1], acx_chapters[2]]
    path, bounds, report = export_m4b_checked(items, TITLES, tmp_path / "book.m4b", ACX, TAGS, cover)

    assert report.passed, report.failures
    assert report.failures == [] and report.first_pass_failures is None and report.sliced_by == "file"
    assert path.exists() and not list(tmp_path.glob(".tmp-*"))
    total_s = sum(len(c) for c in acx_chapters) / SR
    c = report.container
    assert (c["codec"], c["sample_rate"], c["channels"], c["audio_streams"]) == ("aac", 44100, 1, 1)
    assert c["chapter_markers"] == 3 and c["cover"] is True
    assert c["tags"] == {"title": "Book", "artist": "Ann Author"}
    assert abs(c["duration_s"] - total_s) <= 0.05 and abs(c["decoded_duration_s"] - total_s) <= 0.05
    starts = np.concatenate([[0], np.cumsum([len(x) for x in acx_chapters])]) * 1000 / SR
    for ch, a, b, (s, e), x in zip(report.chapters, starts[:-1], starts[1:], bounds, acx_chapters):
        assert (ch.start_ms, ch.end_ms) == (s, e) == (round(a), round(b))
        assert abs(ch.file_start_ms - a) <= MARK_TOLERANCE_MS and abs(ch.file_end_ms - b) <= MARK_TOLERANCE_MS
        assert ch.passed and ch.gain_db == 0.0
        # the chapter slice of the decoded M4B reads like its master
        m, ref = ch.measurements, meter.measure(x)
        assert abs(m.duration_s - len(x) / SR) <= 0.02
        assert abs(m.rms_db - ref.rms_db) < 0.5
    assert [ch.title for ch in report.chapters] == TITLES
    book = report.measurements
    assert abs(book.duration_s - total_s) <= 0.05 and -23 <= book.rms_db <= -18 and book.sample_peak_dbfs <= -3
    assert book.sample_peak_dbfs == max(ch.measurements.sample_peak_dbfs for ch in report.chapters)
    assert "duration_s" in report.limits["chapter"] and "duration_s" not in report.limits["book"]
    d = report.to_dict()
    _book_check_validator().validate(d)
    assert d["passed"] is True and d["corrected"] is False and len(d["chapters"]) == 3


def test_hot_master_gets_one_peak_correcting_reencode_and_passes(tmp_path, acx_chapters):
    hot = _burst(acx_chapters[1], -2.0)        # sample peak -2 dBFS: over acx's -3, RMS still in range
    assert -23 <= meter.measure(hot).rms_db <= -18
    items = [acx_chapters[0], hot, acx_chapters[2]]

    # without the correction the check reports the chapter (and the book) over the limit
    _, _, raw = export_m4b_checked(items, TITLES, tmp_path / "raw.m4b", ACX, TAGS, correct_peaks=False)
    assert not raw.passed
    assert any(f.startswith("chapter 2 (Chapter 1: A=B; #1): sample_peak_dbfs") and f.endswith("above -3")
               for f in raw.failures), raw.failures
    assert any(f.startswith("book: sample_peak_dbfs") for f in raw.failures)
    assert raw.chapters[0].passed and raw.chapters[2].passed

    _, _, report = export_m4b_checked(items, TITLES, tmp_path / "book.m4b", ACX, TAGS)
    assert report.passed, report.failures
    assert report.first_pass_failures == raw.failures   # same encode, same verdict
    gains = [ch.gain_db for ch in report.chapters]
    assert gains[0] == 0.0 and gains[2] == 0.0          # only the hot chapter is touched
    first_peak = raw.chapters[1].measurements.sample_peak_dbfs
    assert gains[1] == pytest.approx(-3.0 - PEAK_MARGIN_DB - first_peak, abs=0.01)
    assert report.chapters[1].measurements.sample_peak_dbfs <= -3.0
    assert -23 <= report.chapters[1].measurements.rms_db < raw.chapters[1].measurements.rms_db
    d = report.to_dict()
    _book_check_validator().validate(d)
    assert d["corrected"] is True and d["chapters"][1]["gain_db"] < 0


def test_corrections_add_up_when_a_reencode_puts_another_chapter_over(tmp_path, acx_chapters, monkeypatch):
    """AAC's overshoot moves between encodes: the second encode may put another chapter over (a
    one-hour book did). The corrections add up over at most MAX_PEAK_REENCODES re-encodes."""
    from dia_core.audio import m4b

    script = iter([[0.0, -0.4, 0.0], [-0.3, 0.0, 0.0], [0.0, 0.0, -0.2]])   # what each check asks for
    monkeypatch.setattr(m4b, "_peak_corrections", lambda report, settings: next(script))
    encoded = []
    real = m4b._encode_m4b
    monkeypatch.setattr(m4b, "_encode_m4b", lambda items, lengths, meta, out, cover, kbps, sr, gains=None, **k: (
        encoded.append(list(gains) if gains else None), real(items, lengths, meta, out, cover, kbps, sr, gains, **k))[1])
    _, _, report = export_m4b_checked(acx_chapters, TITLES, tmp_path / "book.m4b", ACX, TAGS)
    assert m4b.MAX_PEAK_REENCODES == 2
    assert encoded == [None, [0.0, -0.4, 0.0], [-0.3, -0.4, 0.0]]   # then it stops, whatever is left
    assert [c.gain_db for c in report.chapters] == [-0.3, -0.4, 0.0] and report.first_pass_failures is not None


def test_peak_correction_that_breaks_loudness_is_reported(tmp_path):
    """Podcast: a peak at -0.3 dBTP in a chapter at -16.8 LUFS needs about 1.2 dB less gain, which
    takes the loudness under -17 LUFS: the M4B is re-encoded once and the failure reported."""
    hot = _burst(_chapter(3.0, 0, PODCAST, -0.8), -0.3)
    _, _, report = export_m4b_checked([_chapter(2.0, 1, PODCAST, -0.8), hot], ["One", "Two"],
                                      tmp_path / "b.m4b", PODCAST, TAGS)
    assert not report.passed
    assert any(f.startswith("chapter 2 (Two): true_peak_dbtp") for f in report.first_pass_failures)
    assert report.chapters[0].gain_db == 0.0 and report.chapters[1].gain_db < -0.5
    assert any(f.startswith("chapter 2 (Two): integrated_lufs") and f.endswith("below -17")
               for f in report.failures), report.failures


def test_verify_reports_markers_duration_tags_cover_and_format_mismatches(tmp_path, acx_chapters):
    path, bounds = export_m4b(acx_chapters, TITLES, tmp_path / "book.m4b", TAGS)
    total_s = sum(len(c) for c in acx_chapters) / SR
    ok = verify_m4b(path, TITLES, bounds, ACX, duration_s=total_s, tags=TAGS)
    assert ok.passed, ok.failures

    # markers: a title differs, a chapter boundary 100 ms away from the plan
    shifted = [bounds[0], (bounds[1][0] + 100, bounds[1][1]), bounds[2]]
    titles = [TITLES[0], "Chapter One", TITLES[2]]
    r = verify_m4b(path, titles, shifted, ACX, duration_s=total_s, tags=TAGS)
    assert not r.passed
    assert "chapter 2: marker title 'Chapter 1: A=B; #1', planned 'Chapter One'" in r.failures
    assert any(f.startswith("chapter 2 (Chapter One): marker start") and "-100 ms off the planned" in f
               for f in r.failures), r.failures
    assert not any("marker end" in f for f in r.failures)   # the other marks are within 20 ms

    # duration: the masters add up to 200 ms more than the file holds
    r = verify_m4b(path, TITLES, bounds, ACX, duration_s=total_s + 0.2, tags=TAGS)
    assert any(f.startswith("duration") and "-200 ms, max 50" in f for f in r.failures), r.failures
    assert any(f.startswith("decoded duration") for f in r.failures)

    # chapter count: two planned, three in the file -> sliced at the planned marks instead
    r = verify_m4b(path, TITLES[:2], bounds[:2], ACX, duration_s=bounds[1][1] / 1000, tags=TAGS)
    assert "chapter markers: 3 in the file, 2 planned" in r.failures and r.sliced_by == "plan"

    # tags, cover and channel expectations
    r = verify_m4b(path, TITLES, bounds, ACX, duration_s=total_s, tags={"title": "Book", "author": "Bob"},
                   cover=True, channels=2)
    assert "tag artist is 'Ann Author', expected 'Bob'" in r.failures
    assert "cover: no attached picture in the file" in r.failures
    assert "channels 1: expected 2 like the chapter files" in r.failures

    bare, _ = export_m4b(acx_chapters, TITLES, tmp_path / "bare.m4b")
    r = verify_m4b(bare, TITLES, bounds, ACX, duration_s=total_s)
    assert "tag title missing" in r.failures and "tag artist missing" in r.failures


def test_verify_rejects_a_non_aac_file(tmp_path, acx_chapters):
    x = np.concatenate(acx_chapters)
    wav = io.write_wav_float(x, tmp_path / "book.wav")
    r = verify_m4b(wav, ["All"], [(0, round(len(x) * 1000 / SR))], ACX, duration_s=len(x) / SR)
    assert "codec pcm_f32le: M4B audio must be AAC" in r.failures
    assert "chapter markers: 0 in the file, 1 planned" in r.failures
    assert r.sliced_by == "plan" and r.chapters[0].file_start_ms is None
