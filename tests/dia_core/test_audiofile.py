import numpy as np
import pytest
import soundfile as sf

from dia_core import audiofile as io
from dia_core.errors import InputError

from dia_core.params import SAMPLE_RATE as SR


def test_write_float_wav_roundtrip_is_bit_exact(tmp_path):
    x = (np.random.default_rng(1).standard_normal(SR) * 0.1).astype(np.float32)
    p = io.write_wav_float(x, tmp_path / "a.wav")
    info = sf.info(str(p))
    assert info.subtype == "FLOAT" and info.samplerate == SR and info.channels == 1
    np.testing.assert_array_equal(io.read_audio(p), x)
    assert not list(tmp_path.glob(".tmp-*"))


def test_read_resamples_and_downmixes(tmp_path):
    t = np.arange(22050) / 22050
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 440 * t)], axis=1) * 0.5
    sf.write(str(tmp_path / "s.wav"), stereo, 22050, subtype="PCM_16")
    y = io.read_audio(tmp_path / "s.wav")
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) - SR) <= 2
    assert abs(np.sqrt(np.mean(y[1000:-1000] ** 2)) - 0.5 / np.sqrt(2)) < 0.01


def test_decode_mp3_via_ffmpeg(tmp_path):
    import subprocess
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "sine=f=500:d=1:sample_rate=48000",
                    "-c:a", "libmp3lame", "-b:a", "128k", str(tmp_path / "s.mp3")], check=True)
    y = io.read_audio(tmp_path / "s.mp3")
    assert abs(len(y) / SR - 1.0) < 0.03


def test_as_float_mono_rejects_bad_input():
    with pytest.raises(InputError):
        io.as_float_mono(np.array([0.0, np.nan], dtype=np.float32))
    with pytest.raises(InputError):
        io.as_float_mono(np.zeros((2, 3, 4)))
    y = io.as_float_mono(np.array([32767, -32767], dtype=np.int16))
    np.testing.assert_allclose(y, [1.0, -1.0], atol=1e-6)


def test_missing_file_is_input_error(tmp_path):
    with pytest.raises(InputError):
        io.read_audio(tmp_path / "nope.wav")


def test_db_never_infinite():
    assert io.db(0.0) == -200.0
    assert io.db(1.0) == 0.0
    assert abs(io.db(io.undb(-23.5)) + 23.5) < 1e-9
