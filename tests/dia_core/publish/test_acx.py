"""ACX package pieces on synthetic deliveries: split planning (a 121-minute chapter -> two parts at
paragraph pauses), the cover check, report rows that fail with a named reason (too quiet, 128 kbps,
stereo in a mono package), and one package built end to end with a chapter split into parts."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from dia_core.audio import encode
from dia_core.publish import acx
from dia_core.publish.acx import Gap, Part, SplitImpossible, check_cover, measure_row, plan_parts, plan_sample
from dia_core.script.publishing import AcxSettings, RetailSample
from dia_core.settings import DeliverySettings

from .conftest import make_chapter

ACX = DeliverySettings(profile="acx", formats=("mp3",))
MIN = 60_000


def _paragraph_gaps(total_ms: int, every_ms: int) -> list[Gap]:
    return [Gap(t - 700, t) for t in range(every_ms, total_ms, every_ms)]


def test_121_minute_chapter_is_split_into_two_parts_at_paragraph_pauses():
    gaps = _paragraph_gaps(121 * MIN, 37_000)        # a paragraph every 37 s
    parts = plan_parts(121 * MIN, gaps)
    assert len(parts) == 2
    assert all(p.length_ms <= 120 * MIN for p in parts)
    cut = next(g for g in gaps if g.end_ms == parts[0].end_ms)   # cut in a paragraph pause
    assert parts[1].start_ms == cut.start_ms
    assert parts[0].start_ms == 0 and parts[-1].end_ms == 121 * MIN
    assert (parts[0].head_pad_ms, parts[0].tail_pad_ms, parts[1].head_pad_ms) == (0, 2500, 750)
    assert abs(parts[0].length_ms - parts[1].length_ms) < 40_000   # about equal halves
    assert plan_parts(119 * MIN, gaps) == [Part(0, 119 * MIN)]
    assert len(plan_parts(250 * MIN, _paragraph_gaps(250 * MIN, 37_000))) == 3


def test_a_chapter_without_usable_paragraph_pauses_cannot_be_split():
    with pytest.raises(SplitImpossible, match="no split into parts of at most 120 minutes"):
        plan_parts(121 * MIN, [])
    with pytest.raises(SplitImpossible):   # one pause, 10 minutes in: the rest is still too long
        plan_parts(130 * MIN, [Gap(10 * MIN, 10 * MIN + 700)])


def test_cover_check(tmp_path):
    Image.new("RGB", (2400, 2400), (10, 20, 30)).save(tmp_path / "ok.png")
    Image.new("RGB", (1000, 1000), (10, 20, 30)).save(tmp_path / "small.jpg")
    Image.new("RGB", (300, 320), (10, 20, 30)).save(tmp_path / "tall.png")
    Image.new("RGB", (300, 300), (10, 20, 30)).save(tmp_path / "c.gif")
    (tmp_path / "text.png").write_text("not an image")
    assert check_cover(tmp_path / "ok.png")["passed"]
    small = check_cover(tmp_path / "small.jpg")
    assert not small["passed"] and small["reasons"] == ["too small: 1000x1000 px, ACX needs at least 2400x2400"]
    assert "not square: 300x320 px" in check_cover(tmp_path / "tall.png")["reasons"]
    assert "format GIF: ACX takes JPEG or PNG" in check_cover(tmp_path / "c.gif")["reasons"]
    assert check_cover(tmp_path / "text.png")["reasons"][0].startswith("not an image")
    assert check_cover(None)["reasons"] == ["no cover: set `cover:` in project.yaml"]


@pytest.fixture(scope="module")
def encoded(tmp_path_factory):
    """One synthetic 9 s chapter encoded at ACX levels, too quiet, at 128 kbps and in stereo."""
    d = tmp_path_factory.mktemp("rows")
    import soundfile as sf
    c = make_chapter(d, "chapter-01", "One", 2, seconds=2.5)
    audio, _ = sf.read(c["master"], dtype="float32")
    out = {"ok": encode.export_chapter(audio, d / "ok", ACX)["mp3"],
           "quiet": encode.export_chapter(audio * np.float32(10 ** (-8 / 20)), d / "quiet", ACX,
                                          correct_lossy_gain=False)["mp3"],
           "128": encode.export_chapter(audio, d / "lowrate", replace(ACX, mp3_bitrate_kbps=128))["mp3"],
           "stereo": encode.export_chapter(audio, d / "stereo", ACX, channels=2)["mp3"]}
    return out


def test_report_rows_pass_or_fail_with_a_named_reason(encoded):
    ok = measure_row(encoded["ok"], ACX, "chapter", 1)
    assert ok["passed"], ok["reasons"]
    assert (ok["bitrate_kbps"], ok["bitrate_mode"], ok["sample_rate"], ok["channels"]) == (192, "CBR", 44100, 1)
    assert -23 <= ok["rms_db"] <= -18 and ok["peak_dbfs"] <= -3 and ok["noise_floor_db"] <= -60
    assert 0.5 <= ok["head_s"] <= 1.0 and 1.0 <= ok["tail_s"] <= 5.0
    quiet = measure_row(encoded["quiet"], ACX, "chapter", 1)
    assert not quiet["passed"] and any(r.startswith("rms_db") and "below -23" in r for r in quiet["reasons"])
    low = measure_row(encoded["128"], ACX, "chapter", 1)
    assert not low["passed"] and "bit rate 128 kbps below 192 kbps" in low["reasons"]
    stereo = measure_row(encoded["stereo"], ACX, "chapter", 1)
    assert not stereo["passed"] and stereo["reasons"] == ["2 channel(s): the package is mono"]
    assert measure_row(encoded["stereo"], ACX, "chapter", 2)["passed"]   # a stereo package takes it


def test_retail_sample_is_cut_in_pauses():
    chapters = [{"duration_s": 40.0}, {"duration_s": 50.0}]
    segs = [[{"start_ms": 750 + i * 4700, "end_ms": 750 + i * 4700 + 4000} for i in range(8)],
            [{"start_ms": 750 + i * 4700, "end_ms": 750 + i * 4700 + 4000} for i in range(10)]]
    start, end, problem = plan_sample(chapters, segs, RetailSample(chapter=1, start_s=2.0, duration_s=65))
    assert problem is None
    assert start == 750 + 4700 - 300                       # 0.3 s before the first word after 2 s
    assert 60_000 <= end - start <= 66_000
    starts_ends = {40_000 + s["end_ms"] + 1000 for s in segs[1]}   # 1 s after the end of a segment
    assert end in starts_ends
    _, _, problem = plan_sample(chapters, segs, RetailSample(chapter=2, start_s=45.5, duration_s=60))
    assert "after the last words of chapter 2" in problem


class _Project:
    """What build_package reads of a project."""
    def __init__(self, cover, acx_settings):
        self.title, self.author, self.narrator, self.genre, self.year = "Book", "Author", "Reader", "Audiobook", 2026
        self.podcast, self.cover, self.acx = None, cover, acx_settings


def test_package_splits_a_long_chapter_adds_credits_and_reports_every_file(tmp_path):
    Image.new("RGB", (2400, 2400), (10, 20, 30)).save(tmp_path / "cover.png")
    (tmp_path / "acx").mkdir()
    (tmp_path / "acx" / "05-chapter-05.mp3").write_bytes(b"from an earlier package")
    chapters = [make_chapter(tmp_path, "chapter-01", "One", 8, seconds=2.0, seed=1),   # 24 s: 2 parts at 16 s
                make_chapter(tmp_path, "chapter-02", "Two", 4, seconds=2.0, seed=2)]   # 13 s: whole
    credits = [make_chapter(tmp_path, cid, title, 1, seconds=3.0, seed=k) for k, (cid, title) in
               enumerate((("opening-credits", "Opening credits"), ("closing-credits", "Closing credits")), 3)]
    project = _Project(tmp_path / "cover.png", AcxSettings(retail_sample=RetailSample(1, 0.0, 60.0)))
    report = acx.build_package(project, tmp_path, chapters, credits, ACX, limit_ms=16_000)
    names = [r["file"] for r in report["files"]]
    assert names == ["00-opening-credits.mp3", "01-chapter-01-part-1.mp3", "02-chapter-01-part-2.mp3",
                     "03-chapter-02.mp3", "04-closing-credits.mp3", "retail-sample.mp3"]
    rows = {r["file"]: r for r in report["files"]}
    assert all(r["passed"] for n, r in rows.items() if n != "retail-sample.mp3"), report["files"]
    parts = [r for r in report["files"] if r["kind"] == "chapter-part"]
    assert all(r["duration_s"] <= 16 and 0.5 <= r["head_s"] <= 1 and 1 <= r["tail_s"] <= 5 for r in parts)
    # the book is 37 s long: the one-minute sample cannot be cut, and the report says why
    sample = rows["retail-sample.mp3"]
    assert not sample["passed"] and not report["passed"]
    assert any(r.startswith("duration_s") and "below 60" in r for r in sample["reasons"])
    assert any("only 3" in r and "of the book follow the requested start" in r for r in sample["reasons"])
    on_disk = json.loads((tmp_path / "acx" / "acx-report.json").read_text())
    assert on_disk == json.loads(json.dumps(report))
    md = (tmp_path / "acx" / "acx-report.md").read_text()
    assert md.count("| pass |") == 5 and "| FAIL: " in md and "Cover:" in md and "**FAIL**" in md
    assert sorted(p.name for p in (tmp_path / "acx").glob("*.mp3")) == sorted(names)   # the stale file is gone
