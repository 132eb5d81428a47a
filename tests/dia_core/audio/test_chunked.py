"""The chunked (bounded-memory) finishing code equals the whole-array computations it replaced.

Each reference below is the former whole-array formula (pyloudnorm itself for the integrated
loudness). Tolerances are far inside the delivery ones (0.05 LU, 0.05 dB). CHUNK is also shrunk so
short signals cross many chunk edges, and tracemalloc checks that nothing holds a whole-chapter
float64 copy any more.
"""
from __future__ import annotations

import tracemalloc
from dataclasses import asdict

import numpy as np
import pyloudnorm
import pytest
from scipy.ndimage import minimum_filter1d
from scipy.signal import lfilter, resample_poly

from dia_core import audiofile as io
from dia_core.audio import dynamics, encode, meter, profiles
from dia_core.audio import stitch as S
from dia_core.settings import DeliverySettings

from .conftest import SR, speechlike

KINDS = ("sentence", "turn", "paragraph", "sentence", "scene")


def _chapter(seconds: float, seed: int = 0, level=(0.03, 0.3)) -> S.StitchResult:
    """A stitched chapter of about ``seconds`` from speech-like clips with peaky levels."""
    rng = np.random.default_rng(seed)
    pieces, t, i = [], 0.0, 0
    while t < seconds:
        d = float(rng.uniform(1.5, 4.0))
        a = speechlike(d, seed=i, f0=float(rng.uniform(100, 220)), level=float(rng.uniform(*level)))
        pieces.append(S.StitchPiece(a, "chapter_start" if i == 0 else KINDS[i % len(KINDS)], f"s{i}"))
        t += d + 0.5
        i += 1
    return S.stitch_chapter(pieces, DeliverySettings(), seed=seed)


@pytest.fixture(scope="module")
def long_chapter():
    return _chapter(180.0, seed=3)          # three minutes


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(meter, "CHUNK", 4099)
    monkeypatch.setattr(S, "_ROOM_TONE_CHUNK", 3001)
    monkeypatch.setattr(encode, "_PCM_CHUNK", 2999)


# ------------------------------------------------------------------ references (whole-array)

def ref_true_peak(x) -> float:
    y = resample_poly(x.astype(np.float64), 4, 1)
    return max(float(np.abs(y).max()), float(np.abs(x).max()))


def ref_frame_rms(x, win, hop):
    if len(x) <= win:
        return np.array([np.sqrt(np.mean(np.square(x, dtype=np.float64))) if len(x) else 0.0])
    c = np.concatenate([[0.0], np.cumsum(np.square(x, dtype=np.float64))])
    starts = np.arange(0, len(x) - win + 1, hop)
    return np.sqrt(np.maximum(c[starts + win] - c[starts], 0.0) / win)


def ref_limiter_gain(x, ceiling_dbtp, lookahead_ms=5.0, hold_ms=40.0):
    c = 10 ** (ceiling_dbtp / 20)
    env = np.abs(resample_poly(x.astype(np.float64), 4, 1)).reshape(-1, 4).max(axis=1)
    env = np.maximum(env, np.abs(x))
    env[1:] = np.maximum(env[1:], env[:-1])
    if env.max() <= c:
        return np.ones(len(x))
    g = np.minimum(1.0, c / np.maximum(env, 1e-12))
    w, hold = max(1, int(lookahead_ms * SR / 1000)), int(hold_ms * SR / 1000)
    size = hold + 2 * w - 1
    gmin = minimum_filter1d(g, size=size, mode="nearest", origin=(hold + w - 1) - size // 2)
    csum = np.concatenate([[0.0], np.cumsum(np.concatenate([np.full(w - 1, gmin[0]), gmin]))])
    return np.minimum((csum[w:] - csum[:-w]) / w, 1.0)


def ref_tame(x, floor_db, target_db):
    reduction = floor_db - target_db
    hop, win = int(0.01 * SR), int(0.05 * SR)
    rms = ref_frame_rms(np.pad(x.astype(np.float64), (win // 2, win // 2), mode="edge"), win, hop)
    gf = np.where(rms < 10 ** (min(floor_db + 10.0, -45.0) / 20), 10 ** (-reduction / 20), 1.0)
    gf = np.maximum.reduce([gf, np.roll(gf, 1), np.roll(gf, -1)])
    gains = np.repeat(gf, hop)[:len(x)]
    if len(gains) < len(x):
        gains = np.concatenate([gains, np.full(len(x) - len(gains), gains[-1])])
    k = int(0.05 * SR)
    return (x * np.convolve(gains, np.ones(k) / k, mode="same")).astype(np.float32)


def ref_gain_curve(n, spans, speech_db, room_db):
    mask = np.zeros(n)
    for a, b in spans:
        mask[max(0, int(round(a * SR))):min(n, int(round(b * SR)))] = 1.0
    r = int(0.01 * SR)
    mask = np.convolve(mask, np.ones(r) / r, mode="same")
    return 10 ** (room_db / 20) + (10 ** (speech_db / 20) - 10 ** (room_db / 20)) * mask


def ref_room_tone(n, level_db, rng):
    pink = lfilter(S._PINK_B, S._PINK_A, rng.standard_normal(n + 4096))[4096:]
    pink -= pink.mean()
    return (pink * (10 ** (level_db / 20) / (float(np.sqrt(np.mean(pink ** 2))) or 1.0))).astype(np.float32)


def ref_pcm(x, bits, seed=0):
    x = x.astype(np.float64)
    if bits == 16:
        rng = np.random.default_rng(seed)
        x = x * 32767.0 + (rng.random(len(x)) - rng.random(len(x)))
        return np.clip(np.round(x), -32768, 32767).astype("<i2").tobytes()
    return (np.clip(np.round(x * 8388607.0), -8388608, 8388607).astype(np.int64) << 8).astype("<i4").tobytes()


# ------------------------------------------------------------------------------ measurement

def _pyloudnorm(x):
    return pyloudnorm.Meter(SR).integrated_loudness(x.astype(np.float64))


def test_integrated_loudness_equals_pyloudnorm_on_minutes_of_audio(long_chapter):
    x = long_chapter.audio
    assert len(x) > 7 * meter.CHUNK                      # crosses chunk edges at the default size
    for gain in (1.0, 4.0, 0.01):
        y = (x * gain).astype(np.float32)
        assert meter.integrated_lufs(y) == pytest.approx(_pyloudnorm(y), abs=1e-6)


def test_integrated_loudness_edge_cases_with_small_chunks(small_chunks):
    rng = np.random.default_rng(1)
    for n in (int(0.4 * SR) + 1, int(0.45 * SR), 3 * SR + 2205, 7 * SR + 17):   # last block past the end
        x = (rng.standard_normal(n) * 0.1).astype(np.float32)
        assert meter.integrated_lufs(x) == pytest.approx(_pyloudnorm(x), abs=1e-6), n
    x = speechlike(6.0, seed=2)                      # gated: silences around the speech
    assert meter.integrated_lufs(x) == pytest.approx(_pyloudnorm(x), abs=1e-6)
    assert meter.integrated_lufs(np.full(2 * SR, 1e-6, np.float32)) == meter.FLOOR_DB   # under -70 LKFS
    assert meter.integrated_lufs(np.zeros(SR // 10, np.float32)) == meter.FLOOR_DB      # shorter than a block


@pytest.mark.parametrize("chunked", [False, True])
def test_measure_equals_whole_array_formulas(long_chapter, chunked, request):
    if chunked:
        request.getfixturevalue("small_chunks")
        x = long_chapter.audio[: 20 * SR]
    else:
        x = long_chapter.audio
    x = (x * 3.0).astype(np.float32)
    m = meter.measure(x)
    rms = ref_frame_rms(x, int(0.5 * SR), int(0.05 * SR))
    assert m.integrated_lufs == pytest.approx(_pyloudnorm(x), abs=1e-6)
    assert m.true_peak_dbtp == pytest.approx(20 * np.log10(ref_true_peak(x)), abs=1e-6)
    assert m.sample_peak_dbfs == pytest.approx(20 * np.log10(float(np.abs(x).max())), abs=1e-9)
    assert m.rms_db == pytest.approx(20 * np.log10(np.sqrt(np.mean(np.square(x, dtype=np.float64)))), abs=1e-9)
    assert m.noise_floor_db == pytest.approx(20 * np.log10(rms.min()), abs=1e-4)
    hop = int(0.05 * SR)
    loud = np.nonzero(ref_frame_rms(x, hop, hop) > 10 ** (min(max(m.noise_floor_db + 20, -50), -40) / 20))[0]
    assert m.head_silence_s == pytest.approx(loud[0] * hop / SR)
    assert m.tail_silence_s == pytest.approx((len(x) - (loud[-1] + 1) * hop) / SR)


def test_check_file_decodes_like_decode_ffmpeg(long_chapter, tmp_path):
    s = DeliverySettings(profile="podcast", formats=("mp3", "flac"))
    files = encode.export_chapter(long_chapter.audio[: 30 * SR] * 4, tmp_path / "c", s, correct_lossy_gain=False)
    for fmt, path in files.items():
        decoded, by_ffmpeg = profiles._decode_mono(path, io.probe(path)), io.decode_ffmpeg(path)
        if fmt == "mp3":   # libsndfile's mpg123 in process: ffmpeg's samples within float rounding
            assert profiles.decode_mp3(path) is not None and len(decoded) == len(by_ffmpeg)
            np.testing.assert_allclose(decoded, by_ffmpeg, rtol=1e-5, atol=2e-6)
            a, b = profiles.check_file(path, s).measurements, meter.measure(by_ffmpeg)
            for name in ("integrated_lufs", "true_peak_dbtp", "sample_peak_dbfs", "rms_db", "noise_floor_db"):
                assert getattr(a, name) == pytest.approx(getattr(b, name), abs=1e-3), name
        else:
            np.testing.assert_array_equal(decoded, by_ffmpeg)
            assert profiles.check_file(path, s).measurements == meter.measure(by_ffmpeg)


# ------------------------------------------------------------------------------- processing

@pytest.mark.parametrize("ceiling", [-1.0, -3.5, -12.0])
def test_limiter_gain_and_limit_equal_whole_array(long_chapter, small_chunks, ceiling):
    x = (long_chapter.audio[: 15 * SR] * 4.0).astype(np.float32)
    ref = ref_limiter_gain(x, ceiling)
    g = dynamics.limiter_gain(x, ceiling)
    assert ref.min() < 1.0                           # the limiter works
    np.testing.assert_allclose(g, ref, rtol=0, atol=1e-9)
    y, red = dynamics.limit(x, ceiling)
    assert red == pytest.approx(-20 * np.log10(ref.min()), abs=1e-6)
    assert meter.true_peak(y) <= ceiling + 1e-6
    before_trim = (x.astype(np.float64) * ref).astype(np.float32)
    ratio = y[np.abs(x) > 0.01] / before_trim[np.abs(x) > 0.01]
    assert ratio.max() <= 1 + 1e-6 and ratio.min() >= 10 ** (-0.1 / 20)   # the static trim only
    inplace = x.copy()                               # in place (what finish does) gives the same
    smallest, peak = dynamics._limit(inplace, inplace, ceiling, SR)
    assert smallest == pytest.approx(ref.min(), abs=1e-9)
    np.testing.assert_array_equal(inplace, y)
    assert peak is None and ref_true_peak(y) <= 10 ** (ceiling / 20) * (1 + 1e-9)   # measured later, once


def test_limit_leaves_audio_under_the_ceiling_alone(small_chunks):
    x = speechlike(3.0, level=0.3)
    y, red = dynamics.limit(x, -1.0)
    assert y is x and red == 0.0
    assert dynamics._limit(x, np.empty_like(x), -1.0, SR)[1] == pytest.approx(ref_true_peak(x), rel=1e-12)
    np.testing.assert_array_equal(dynamics.limiter_gain(x, -1.0), np.ones(len(x)))


def test_noise_taming_and_gain_curve_equal_whole_array(small_chunks):
    st = _chapter(10.0, seed=4)
    x = (st.audio * 30).astype(np.float32)           # room tone lifted to about -40 dB
    nf = meter._noise_floor_db(x, SR)
    ref = ref_tame(x, nf, -65.0)
    y = x.copy()
    assert dynamics._tame_noise_floor(y, SR, nf, -65.0) == pytest.approx(nf + 65.0)
    np.testing.assert_allclose(y, ref, rtol=1e-6, atol=1e-9)
    n = len(x)
    curve = dynamics._gain_curve(n, st.spans, 14.0, 0.0, SR)
    whole = np.concatenate([curve(s, min(n, s + 5000)) for s in range(0, n, 5000)])
    np.testing.assert_allclose(whole, ref_gain_curve(n, st.spans, 14.0, 0.0), rtol=0, atol=1e-12)


@pytest.mark.parametrize("profile,with_spans", [("acx", True), ("acx", False), ("podcast", True)])
def test_finish_does_not_depend_on_the_chunk_size(long_chapter, monkeypatch, profile, with_spans):
    x = long_chapter.audio[: 60 * SR]
    spans = [(a, b) for a, b in long_chapter.spans if b <= 60.0] if with_spans else None
    s = DeliverySettings(profile=profile)
    y1, r1 = dynamics.finish(x, s, spans=spans)
    assert r1.after == meter.measure(y1)                 # the limiter's true peak reused for ``after``
    monkeypatch.setattr(meter, "CHUNK", 1 << 14)
    y2, r2 = dynamics.finish(x, s, spans=spans)
    np.testing.assert_allclose(y1, y2, rtol=0, atol=1e-6)
    d1, d2 = r1.to_dict(), r2.to_dict()
    for k in ("before", "after"):
        for name in d1[k]:
            assert d1[k][name] == pytest.approx(d2[k][name], abs=0.002), (k, name)
    assert r1.iterations == r2.iterations
    assert r1.gain_db == pytest.approx(r2.gain_db, abs=1e-4)
    if profile == "acx" and not with_spans:
        assert r1.noise_floor_reduction_db > 0       # the expander ran


# ------------------------------------------------------------------------- stitch and export

@pytest.mark.parametrize("n", [1, 3000, 3001 + 4096, 50_000])
def test_room_tone_equals_one_shot_generation(small_chunks, n):
    a = S.room_tone(n, -70.0, np.random.default_rng(7))
    rng = np.random.default_rng(7)
    b = ref_room_tone(n, -70.0, rng)
    # the raw noise is held as float32 before centring: within 1e-6 of the tone's RMS
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6 * 10 ** (-70 / 20))
    r = np.random.default_rng(7)
    S.room_tone(n, -70.0, r)
    assert r.random() == rng.random()                # the generator ends where a single draw leaves it


@pytest.mark.parametrize("bits", [16, 24])
def test_to_pcm_equals_whole_array_conversion(small_chunks, bits):
    x = (np.random.default_rng(0).standard_normal(20_001) * 0.3).astype(np.float32)
    x[:2] = (1.2, -1.2)                              # clamped
    data, width = encode.to_pcm(x, bits, seed=5)
    assert width == (2 if bits == 16 else 4)
    assert bytes(data) == ref_pcm(x, bits, seed=5)
    g = 0.37
    assert bytes(encode.to_pcm(x, bits, seed=5, gain_db=g)[0]) == ref_pcm(x * np.float32(io.undb(g)), bits, seed=5)


# ------------------------------------------------------------------------------------ memory

def _peak_traced(fn):
    tracemalloc.start()
    try:
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_stays_near_one_chapter(long_chapter, monkeypatch, tmp_path):
    """Python-traced peak (numpy reports its buffers) of each step, in float32 chapters: the
    whole-array code needed about 15x (finish) and 6x (measure, stitch)."""
    monkeypatch.setattr(meter, "CHUNK", 1 << 15)
    monkeypatch.setattr(S, "_ROOM_TONE_CHUNK", 1 << 15)
    monkeypatch.setattr(encode, "_PCM_CHUNK", 1 << 15)
    x = long_chapter.audio[: 60 * SR]
    spans = [(a, b) for a, b in long_chapter.spans if b <= 60.0]
    size = x.nbytes
    s = DeliverySettings(profile="acx")
    (y, _), peak = _peak_traced(lambda: dynamics.finish(x, s, spans=spans))
    assert peak < 1.3 * size, peak / size            # the output array plus small blocks
    _, peak = _peak_traced(lambda: meter.measure(y))
    assert peak < 0.4 * size, peak / size            # as_float_mono's finiteness mask (bool)
    _, peak = _peak_traced(lambda: encode.to_pcm(y, 24))
    assert peak < 1.2 * size, peak / size            # the 32-bit PCM buffer
    _, peak = _peak_traced(lambda: sum(len(c) for c in encode.pcm_chunks(y, 24)))
    assert peak < 0.4 * size, peak / size            # what an encode streams: blocks (+ the mask)
    pieces = [S.StitchPiece(y[i:i + 3 * SR], "sentence", f"p{i}") for i in range(0, len(y), 3 * SR)]
    _, peak = _peak_traced(lambda: S.stitch_chapter(pieces, s))
    assert peak < 1.5 * size, peak / size            # the stitched chapter (+ validation masks)
    path = encode.export_chapter(y, tmp_path / "c", s, correct_lossy_gain=False)["mp3"]
    _, peak = _peak_traced(lambda: profiles.check_file(path, s))
    assert peak < 1.3 * size, peak / size            # the decoded chapter, read in place
    assert asdict(profiles.check_file(path, s).measurements)
