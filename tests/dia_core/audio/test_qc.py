from types import SimpleNamespace

import numpy as np
import pytest

from dia_core.audio.qc import check_segment, expected_seconds, longest_internal_silence

from .conftest import SR


def voiced(seconds, level=0.2, f0=150.0):
    t = np.arange(int(seconds * SR)) / SR
    x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 8)) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
    return (x / np.abs(x).max() * level).astype(np.float32)


def sil(seconds):
    return np.zeros(int(seconds * SR), np.float32)


def seg(*parts):
    return np.concatenate([sil(0.2), *parts, sil(0.2)])


def test_good_segment_passes():
    r = check_segment(seg(voiced(1.5), sil(0.3), voiced(1.5)), expected_seconds=3.0, hit_limit=False)
    assert r.passed and r.failures == []
    assert r.metrics["duration_ratio"] == pytest.approx(3.3 / 3.0, abs=0.03)
    assert r.metrics["max_internal_silence_s"] == pytest.approx(0.3, abs=0.03)


def test_duration_ratio_window():
    short = check_segment(seg(voiced(1.0)), expected_seconds=3.0)
    long = check_segment(seg(voiced(7.0)), expected_seconds=3.0)
    assert not short.passed and any(f.startswith("duration_ratio") for f in short.failures)
    assert not long.passed and any(f.startswith("duration_ratio") for f in long.failures)
    loose = check_segment(seg(voiced(1.0)), expected_seconds=3.0, duration_ratio_min=0.3)
    assert loose.passed


def test_hit_token_limit_fails():
    r = check_segment(seg(voiced(3.0)), expected_seconds=3.0, hit_limit=True)
    assert not r.passed and any("hit_token_limit" in f for f in r.failures)


def test_long_internal_silence():
    x = seg(voiced(1.0), sil(2.5), voiced(1.0))
    r = check_segment(x, expected_seconds=4.0)
    assert any(f.startswith("internal_silence") for f in r.failures)
    assert longest_internal_silence(x)[0] == pytest.approx(2.5, abs=0.03)
    # a project QCSettings-like object is accepted
    r2 = check_segment(x, expected_seconds=4.0, settings=SimpleNamespace(
        duration_ratio_min=0.5, duration_ratio_max=2.0, max_internal_silence_s=3.0))
    assert r2.passed


def test_clipping_detected():
    x = seg(voiced(3.0, level=1.6).clip(-1, 1))
    r = check_segment(x, expected_seconds=3.0)
    assert any(f.startswith("clipping") for f in r.failures)
    assert r.metrics["clip_runs"] > 0


def test_near_silent():
    r = check_segment(seg(voiced(3.0, level=0.002)), expected_seconds=3.0)
    assert any(f.startswith("near_silent") for f in r.failures)
    r2 = check_segment(sil(3.0), expected_seconds=3.0)
    assert not r2.passed and any(f.startswith("near_silent") for f in r2.failures)


def test_score_ranks_attempts():
    good = check_segment(seg(voiced(3.0)), expected_seconds=3.0)
    slightly_long = check_segment(seg(voiced(4.0)), expected_seconds=3.0)
    bad = check_segment(seg(voiced(3.0)), expected_seconds=3.0, hit_limit=True)
    worse = check_segment(seg(voiced(1.0)), expected_seconds=3.0, hit_limit=True)
    assert good.score > slightly_long.score > bad.score > worse.score


def test_real_speech_passes_qc(speech_clips):
    texts = ["Chapter one. The lighthouse keeper climbed the stairs at dusk.",
             "Who is there? she asked, holding the lamp high.",
             "Only the wind, he said, and closed the heavy door behind him."]
    for clip, text in zip(speech_clips, texts):
        r = check_segment(clip, expected_seconds=expected_seconds(text))
        assert r.passed, (text, r.failures, r.metrics)


def test_expected_seconds_ignores_tags():
    assert expected_seconds("[S1] Hello there. (laughs) [S2] Hi!") == pytest.approx(len("Hello there. Hi!") / 14.0)
    assert expected_seconds("abc " * 10, speed_factor=0.5) == pytest.approx(2 * len(("abc " * 10).strip()) / 14.0)
