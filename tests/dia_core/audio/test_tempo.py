import numpy as np
import pytest

from dia_core.audio.tempo import available_engines, change_tempo
from dia_core.errors import InputError

from .conftest import SR, speechlike


def f0_of(x: np.ndarray) -> float:
    """Frequency of the strongest peak, refined by parabolic interpolation of the log spectrum."""
    x = x[len(x) // 8: -len(x) // 8].astype(np.float64)
    n = 1 << 20
    X = np.abs(np.fft.rfft(x * np.hanning(len(x)), n))
    k = int(np.argmax(X))
    a, b, c = np.log(X[k - 1:k + 2])
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * SR / n


def tone(seconds=2.0, f=220.0):
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32)


def test_rubberband_is_available():
    assert "rubberband" in available_engines()


@pytest.mark.parametrize("engine", ["rubberband", "atempo"])
def test_speed_08_lengthens_by_125_and_keeps_pitch(engine):
    x = tone()
    y = change_tempo(x, 0.8, engine=engine)
    assert y.dtype == np.float32
    assert abs(len(y) / len(x) - 1.25) <= 0.02 * 1.25
    assert abs(f0_of(y) / f0_of(x) - 1) < 0.01
    # the naive (resampling) approach would have moved the pitch to 176 Hz
    assert abs(f0_of(y) - 220) < 2.2


def test_speed_factor_default_094_and_fast_speech():
    x = speechlike(2.0)
    y = change_tempo(x, 0.94)
    assert len(y) == round(len(x) / 0.94)
    z = change_tempo(x, 1.5)
    assert len(z) == round(len(x) / 1.5)
    # no big level jump (a phase vocoder loses a little; loudness.finish sets the final level)
    r = lambda a: 20 * np.log10(np.sqrt(np.mean(a.astype(np.float64) ** 2)))
    assert abs(r(y) - r(x)) < 2.5 and abs(r(z) - r(x)) < 2.5


def test_speed_one_returns_input_unchanged():
    x = tone(0.5)
    assert change_tempo(x, 1.0) is x


@pytest.mark.parametrize("bad", [0.3, 1.6, "fast", True])
def test_out_of_range_is_input_error(bad):
    with pytest.raises(InputError):
        change_tempo(tone(0.2), bad)


def test_real_speech_duration(speech_clips):
    x = speech_clips[0]
    y = change_tempo(x, 0.8)
    assert abs(len(y) / len(x) - 1.25) < 0.001
    assert np.isfinite(y).all() and np.abs(y).max() < 1.0
