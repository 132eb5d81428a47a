import pytest

from dia_core.audio.captions import Cue, cues_from_segments, read_srt, read_vtt, srt_text, vtt_text, write_srt, write_vtt


def test_vtt_format_and_voice():
    text = vtt_text([Cue(1.0, 2.5, "Narrator", "It was <dark> & stormy."), Cue(3661.0015, 3662.0, None, "x")])
    assert text.startswith("WEBVTT\n\n")
    assert "00:00:01.000 --> 00:00:02.500\n<v Narrator>It was &lt;dark&gt; &amp; stormy.\n" in text
    assert "01:01:01.002 --> 01:01:02.000\nx\n" in text


def test_srt_format():
    text = srt_text([Cue(0.0, 1.25, "Ann", "Hi."), Cue(2.0, 3.0, None, "Bye.")])
    assert text.startswith("1\n00:00:00,000 --> 00:00:01,250\nAnn: Hi.\n\n2\n00:00:02,000 --> 00:00:03,000\nBye.\n")


def test_roundtrip_and_atomic(tmp_path):
    cues = [Cue(0.75, 2.1, "S1", "One."), Cue(2.55, 4.0, "Bob", "Two <b>.")]
    write_vtt(cues, tmp_path / "c.vtt")
    write_srt(cues, tmp_path / "c.srt")
    assert read_vtt(tmp_path / "c.vtt") == cues
    assert read_srt(tmp_path / "c.srt") == cues
    assert not list(tmp_path.glob(".tmp-*"))


def test_cues_from_manifest_segments():
    segs = [{"start_ms": 750, "end_ms": 2100, "text": "[S1] Hello there.", "speakers": ["S1"]},
            {"start_ms": 2550, "end_ms": 4000, "text": "[S1] Hi. [S2] Yo.", "speakers": ["S1", "S2"]}]
    cues = cues_from_segments(segs, {"S1": "Narrator", "S2": "Ann"})
    assert cues == [Cue(0.75, 2.1, "Narrator", "Hello there."), Cue(2.55, 4.0, "Narrator & Ann", "Hi. Yo.")]


def test_bad_cue_rejected():
    with pytest.raises(ValueError):
        vtt_text([Cue(2.0, 1.0, None, "x")])
