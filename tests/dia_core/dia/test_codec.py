import math
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from dia_core.dia.codec import DiaCodec
from dia_core.dia.generate import AudioPrompt, generate
from dia_core.dia.model import DiaModel
from dia_core.errors import InputError
from tests.tiny_models import write_tiny_dac, write_tiny_dia_checkpoint

pytestmark = [pytest.mark.filterwarnings("ignore:.*exceeds the decoder:UserWarning"),
              pytest.mark.filterwarnings("ignore:.*weight_norm.*:FutureWarning"),
              pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(scope="module")
def dac_path(tmp_path_factory):
    return write_tiny_dac(tmp_path_factory.mktemp("dac") / "weights_44khz.pth")


@pytest.fixture
def codec(dac_path):
    return DiaCodec.load(dac_path)


def _tone(seconds, rate):
    t = np.arange(int(seconds * rate)) / rate
    return np.stack([0.3 * np.sin(2 * np.pi * 220 * t), 0.2 * np.sin(2 * np.pi * 330 * t)], 1).astype(np.float32)


@pytest.mark.parametrize("ext", ["wav", "flac", "mp3"])
def test_encode_file_stereo_22k(codec, tmp_path, ext):
    path = tmp_path / f"prompt.{ext}"
    sf.write(path, _tone(1.5, 22050), 22050)
    codes = codec.encode_file(path)
    assert codes.shape == (math.ceil(1.5 * 44100 / 512), 9) and codes.dtype == torch.long
    assert abs(codes.shape[0] - 1.5 * 86.13) <= 1
    assert ((codes >= 0) & (codes < 1024)).all()


def test_channels_layouts_and_rates(codec, tmp_path):
    x = _tone(1.0, 22050)
    stereo = codec.encode(x, 22050)
    assert torch.equal(stereo, codec.encode(x.mean(axis=1), 22050))  # stereo is mixed to mono
    assert torch.equal(stereo, codec.encode(torch.from_numpy(x.T.copy()), 22050))  # [channels, N] too
    assert codec.encode(_tone(1.0, 48000)[:, 0], 48000).shape == (87, 9)
    wav, flac = tmp_path / "a.wav", tmp_path / "a.flac"
    sf.write(wav, x, 22050)
    sf.write(flac, x, 22050)
    assert torch.equal(codec.encode_file(wav), codec.encode_file(flac))  # both lossless 16-bit


def test_encoded_prompts_are_cached(codec, dac_path, tmp_path, monkeypatch):
    path = tmp_path / "voice.wav"
    sf.write(path, _tone(0.5, 22050), 22050)
    calls = []
    real = codec.encode
    monkeypatch.setattr(codec, "encode", lambda *a: calls.append(a) or real(*a))
    first = codec.encode_file(path)
    assert torch.equal(codec.encode_file(path), first)
    shutil.copy(path, tmp_path / "same-bytes.wav")
    assert torch.equal(codec.encode_file(tmp_path / "same-bytes.wav"), first)  # keyed by content
    assert len(calls) == 1

    cache = tmp_path / "cache"
    disk = DiaCodec.load(dac_path, cache_dir=cache)
    assert torch.equal(disk.encode_file(path), first)
    assert len(list(cache.glob("*.npy"))) == 1
    fresh = DiaCodec.load(dac_path, cache_dir=cache)
    monkeypatch.setattr(fresh, "encode", lambda *a: pytest.fail("re-encoded a cached prompt"))
    assert torch.equal(fresh.encode_file(path), first)


def test_windowed_decode_matches_whole_decode(codec):
    codes = torch.randint(0, 1024, (300, 9), generator=torch.Generator().manual_seed(0))
    whole = codec.decode(codes, window=10_000)
    assert whole.dtype == np.float32 and whole.shape == (300 * 512,)
    for window in (80, 100):
        assert np.abs(codec.decode(codes, window=window) - whole).max() < 1e-5
    # Without context the window edges are wrong: the check above can fail.
    assert np.abs(codec.decode(codes, window=64, context=0) - whole).max() > 1e-3
    with pytest.raises(InputError, match="window"):
        codec.decode(codes, window=64, context=32)


def test_decode_batch_matches_per_item_decode(codec):
    g = torch.Generator().manual_seed(3)
    lengths = (200, 7, 130, 64, 7, 1)
    codes = [torch.randint(0, 1024, (n, 9), generator=g) for n in lengths] + [torch.zeros(0, 9)]
    codes[1][-1, 0] = 1024  # EOS/PAD decode as code 0, as in decode()
    batch = codec.decode_batch(codes, window=64, context=16, max_windows=5)  # several windows per item
    for c, audio in zip(codes, batch):
        ref = codec.decode(c)  # one window: at most 512 frames
        assert audio.dtype == np.float32 and audio.shape == ref.shape == (len(c) * 512,)
        np.testing.assert_allclose(audio, ref, atol=1e-5, rtol=0)
    pending = codec.start_decode(codes[:2])
    assert [a.shape for a in pending.result()] == [(200 * 512,), (7 * 512,)]


@pytest.mark.parametrize("kind", ["missing", "text", "empty", "fake-mp3"])
def test_bad_audio_is_an_input_error_naming_the_file(codec, tmp_path, kind):
    path = tmp_path / {"missing": "none.wav", "text": "notes.wav", "empty": "empty.wav", "fake-mp3": "x.mp3"}[kind]
    if kind == "text":
        path.write_text("hello, not audio")
    elif kind == "empty":
        sf.write(path, np.zeros((0, 2), dtype=np.float32), 22050)
    elif kind == "fake-mp3":
        path.write_bytes(b"\x00" * 2000)
    with pytest.raises(InputError) as e:
        codec.encode_file(path)
    assert str(path) in str(e.value)


def test_load_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        DiaCodec.load(tmp_path / "nope.pth")
    import dac

    dac.DAC(encoder_dim=4, encoder_rates=[2, 4, 8, 4], decoder_dim=32, decoder_rates=[4, 8, 4, 2],
            sample_rate=44100).save(str(tmp_path / "hop256.pth"), package=False)
    with pytest.raises(InputError, match="hop 256"):
        DiaCodec.load(tmp_path / "hop256.pth")


def test_decode_special_ids_and_file_prompts(codec, tmp_path, monkeypatch):
    codes = torch.randint(0, 1024, (20, 9))
    audio = codec.decode(codes)
    assert audio.dtype == np.float32 and audio.shape == (20 * 512,)
    special = codes.clone()
    special[3, 0], special[5, 4] = 1024, 1025  # EOS/PAD become 0 before decoding
    zeroed = codes.clone()
    zeroed[3, 0], zeroed[5, 4] = 0, 0
    assert np.array_equal(codec.decode(special), codec.decode(zeroed))

    model = DiaModel.from_pretrained(write_tiny_dia_checkpoint(tmp_path / "m", "transformers"))
    model.codec = codec  # voice prompt files are encoded with the model's codec

    path = tmp_path / "voice.flac"
    sf.write(path, _tone(1.0, 22050), 22050)
    calls = []
    real = codec.encode
    monkeypatch.setattr(codec, "encode", lambda *a: calls.append(1) or real(*a))
    prompt = AudioPrompt(path, "[S1] The reference words.")
    out = generate(model, ["[S1] New words.", "[S1] Other new words."], [1, 2], audio_prompts=[prompt, prompt])
    assert [g.prompt_frames for g in out] == [87, 87] and len(calls) == 1
    by_codes = generate(model, ["[S1] New words."], [1], audio_prompts=[AudioPrompt(codec.encode_file(path),
                                                                                   prompt.transcript)])
    assert torch.equal(by_codes[0].codes, out[0].codes)
