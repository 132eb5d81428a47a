import numpy as np
import pytest

from dia_core.audio.stitch import StitchPiece, room_tone, stitch_chapter, trim_bounds
from dia_core.settings import DeliverySettings, Pauses, Trim
from dia_core.errors import InputError

from .conftest import SR, speechlike

BOUNDS = ["chapter_start", "turn", "paragraph", "sentence", "scene"]


def burst(seconds, f0=150.0, lead=0.3, trail=0.4, level=0.2):
    """Harmonic tone with 5 ms fades: sound over exactly ``seconds``, silence around it."""
    t = np.arange(int(seconds * SR)) / SR
    x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 8))
    x *= np.minimum(1, np.minimum(t, t[::-1]) / 0.005)
    x = x / np.abs(x).max() * level
    return np.concatenate([np.zeros(int(lead * SR)), x, np.zeros(int(trail * SR))]).astype(np.float32)


def pieces(n=5):
    return [StitchPiece(burst(1.5, f0=120 + 25 * i), BOUNDS[i % len(BOUNDS)], f"seg{i}") for i in range(n)]


def rms_db(a):
    return 20 * np.log10(np.sqrt(np.mean(np.asarray(a, np.float64) ** 2)))


def test_layout_head_tail_and_pauses_by_boundary():
    s = DeliverySettings()
    ps = pieces()
    r = stitch_chapter(ps, s, seed=3)
    assert r.audio.dtype == np.float32
    assert r.head_s == pytest.approx(s.pauses.chapter_start)
    assert r.tail_s == pytest.approx(s.pauses.chapter_end)
    assert r.spans[0][0] == pytest.approx(s.pauses.chapter_start, abs=1 / SR)
    assert r.duration_s - r.spans[-1][1] == pytest.approx(s.pauses.chapter_end, abs=1 / SR)
    for i in range(1, len(ps)):
        gap = r.spans[i][0] - r.spans[i - 1][1]
        assert gap == pytest.approx(getattr(s.pauses, ps[i].boundary), abs=1.5 / SR), ps[i].boundary
    # each span holds the trimmed piece: 1.5 s of sound + 2 x 40 ms padding (+ frame rounding)
    for a, b in r.spans:
        assert 1.5 + 0.08 - 0.02 <= b - a <= 1.5 + 0.08 + 0.03


def test_custom_pauses_are_used():
    s = DeliverySettings(pauses=Pauses(turn=1.0, chapter_start=0.6, chapter_end=1.2))
    ps = [StitchPiece(speechlike(1.0, seed=1), "chapter_start", "a"), StitchPiece(speechlike(1.0, seed=2), "turn", "b")]
    r = stitch_chapter(ps, s)
    assert r.spans[1][0] - r.spans[0][1] == pytest.approx(1.0, abs=1.5 / SR)
    assert r.head_s == pytest.approx(0.6) and r.tail_s == pytest.approx(1.2)


def test_trim_removes_leading_and_trailing_silence_with_padding():
    x = burst(1.0, lead=0.7, trail=0.9)
    s, e = trim_bounds(x, -45.0, 40.0)
    lead = int(0.7 * SR)
    assert lead - int(0.04 * SR) - int(0.02 * SR) <= s <= lead - int(0.04 * SR) + int(0.01 * SR)
    end_sound = lead + SR
    assert end_sound + int(0.03 * SR) <= e <= end_sound + int(0.04 * SR) + int(0.03 * SR)
    assert trim_bounds(np.zeros(SR, np.float32), -45.0, 40.0) == (0, 0)


def test_room_tone_is_real_noise_at_the_configured_level():
    s = DeliverySettings(room_tone_db=-70.0)
    r = stitch_chapter(pieces(2), s, seed=1)
    head = r.audio[: int(r.head_s * SR)]
    tail = r.audio[-int(r.tail_s * SR):]
    for region in (head, tail):
        assert abs(rms_db(region) - (-70.0)) < 1.0
        assert np.count_nonzero(region == 0.0) < 0.001 * len(region)   # not digital silence
    # pink-ish: more energy below 1 kHz than above 5 kHz (white noise would be the other way round)
    spec = np.abs(np.fft.rfft(tail)) ** 2
    f = np.fft.rfftfreq(len(tail), 1 / SR)
    assert spec[(f > 50) & (f < 1000)].mean() > 5 * spec[(f > 5000) & (f < 15000)].mean()


def test_deterministic_for_a_seed_and_different_across_seeds():
    a = stitch_chapter(pieces(3), DeliverySettings(), seed=7)
    b = stitch_chapter(pieces(3), DeliverySettings(), seed=7)
    c = stitch_chapter(pieces(3), DeliverySettings(), seed=8)
    np.testing.assert_array_equal(a.audio, b.audio)
    assert a.spans == b.spans == c.spans
    assert not np.array_equal(a.audio, c.audio)


def test_joins_have_no_clicks():
    # pieces that start and end at full amplitude (worst case) must still fade smoothly
    loud = [StitchPiece(np.full(SR // 2, 0.5, np.float32), b, str(i)) for i, b in enumerate(["chapter_start", "turn"])]
    r = stitch_chapter(loud, DeliverySettings(trim=Trim(threshold_db=-60, padding_ms=0, crossfade_ms=8)))
    step = np.abs(np.diff(r.audio.astype(np.float64))).max()
    # an 8 ms raised-cosine ramp to 0.5 changes at most 0.5*pi/(2*353) per sample
    assert step < 0.5 * np.pi / (2 * 0.008 * SR) + 0.001   # ramp slope + room-tone sample steps
    assert step < 0.01


def test_zero_pause_overlaps_pieces_as_a_crossfade():
    s = DeliverySettings(pauses=Pauses(sentence=0.0), trim=Trim(crossfade_ms=10))
    ps = [StitchPiece(np.full(SR // 2, 0.3, np.float32), "chapter_start", "a"),
          StitchPiece(np.full(SR // 2, 0.3, np.float32), "sentence", "b")]
    r = stitch_chapter(ps, s)
    assert r.spans[1][0] == pytest.approx(r.spans[0][1] - 0.010, abs=1.5 / SR)
    join = r.audio[int(r.spans[1][0] * SR): int(r.spans[0][1] * SR)]
    # equal-gain raised-cosine crossfade of two equal constants stays constant (no dip, no bump)
    assert np.abs(join - 0.3).max() < 0.002


def test_unknown_boundary_and_bad_audio_are_input_errors():
    with pytest.raises(InputError):
        stitch_chapter([StitchPiece(speechlike(0.5), "chapter", "x")], DeliverySettings())
    with pytest.raises(InputError):
        stitch_chapter([StitchPiece(np.array([np.nan] * 100, np.float32), "chapter_start", "x")], DeliverySettings())


def test_silent_piece_keeps_order_with_empty_span():
    ps = [StitchPiece(speechlike(0.5, seed=1), "chapter_start", "a"),
          StitchPiece(np.zeros(SR, np.float32), "turn", "b"),
          StitchPiece(speechlike(0.5, seed=2), "turn", "c")]
    r = stitch_chapter(ps, DeliverySettings())
    assert r.spans[1][0] == r.spans[1][1]
    assert r.spans[0][1] <= r.spans[1][0] <= r.spans[2][0]


def test_real_speech(speech_clips):
    ps = [StitchPiece(a, b, f"s{i}") for i, (a, b) in enumerate(zip(speech_clips, ["chapter_start", "turn", "turn"]))]
    r = stitch_chapter(ps, DeliverySettings())
    assert len(r.spans) == 3
    for (a, b), clip in zip(r.spans, speech_clips):
        assert 0.3 * len(clip) / SR < b - a <= len(clip) / SR + 1e-9
    room = room_tone(SR, -70.0, np.random.default_rng(0))
    assert abs(rms_db(room) + 70.0) < 0.01
