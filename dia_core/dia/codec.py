"""The DAC 44.1 kHz codec Dia speaks: 512-sample hop (86.13 frames/s), 9 codebooks of 1024 entries.

Encodes voice prompts (any format soundfile or ffmpeg reads, any rate, stereo or mono) to codes
[T, 9], with a cache keyed by the file's sha256 (and the codec's, on disk), and decodes code
sequences to float32 mono audio in windows, many sequences per DAC call, so memory stays bounded
for long sequences (docs/dia-model.md#codec).
"""
from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..atomic import atomic_path
from ..audiofile import read_audio_native
from ..files import file_sha256
from ..errors import InputError
from ..params import CODEBOOK_SIZE, HOP_LENGTH, NUM_CHANNELS, SAMPLE_RATE

# The DAC decoder is convolutional with a receptive field of about 11 latent frames each side, so
# decoding a window with this much context on both sides reproduces the unwindowed output.
DECODE_CONTEXT_FRAMES = 32
DECODE_WINDOW_FRAMES = 512
DECODE_MAX_WINDOWS = 16  # windows per DAC call


class DiaCodec:
    sample_rate = SAMPLE_RATE
    hop_length = HOP_LENGTH

    def __init__(self, dac_model, checksum: str | None = None, cache_dir: str | Path | None = None):
        self.model = dac_model.eval()
        if checksum is None:  # no weights file: hash the parameters
            h = hashlib.sha256()
            for k, v in sorted(self.model.state_dict().items()):
                h.update(k.encode())
                h.update(v.detach().cpu().contiguous().numpy().tobytes())
            checksum = h.hexdigest()
        self.checksum = checksum
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._memory: dict[str, Tensor] = {}  # file sha256 -> codes
        self._stream = None  # CUDA side stream for decoding (side_stream)

    @classmethod
    def load(cls, weights: str | Path | None = None, device="cpu", cache_dir: str | Path | None = None) -> "DiaCodec":
        """``weights=None`` downloads DAC's 44 kHz model (dac.utils.download); a path loads that file."""
        import dac  # descript-audio-codec: heavy, and only needed once a codec is loaded

        if weights is None:
            try:
                weights = dac.utils.download(model_type="44khz")
            except Exception as e:
                raise InputError(f"could not download the DAC 44 kHz weights ({type(e).__name__}: {e}); "
                                 "offline, pass a local weights path", field="codec") from None
        path = Path(weights)
        if not path.is_file():
            raise InputError("DAC weights file not found", file=path)
        try:
            model = dac.DAC.load(str(path))
        except Exception as e:
            raise InputError(f"cannot load DAC weights: {type(e).__name__}: {e}", file=path) from None
        hop = int(np.prod(model.encoder_rates))
        if model.sample_rate != SAMPLE_RATE or hop != HOP_LENGTH or model.n_codebooks != NUM_CHANNELS:
            raise InputError(f"not the 44.1 kHz DAC Dia uses: sample rate {model.sample_rate}, hop {hop}, "
                             f"{model.n_codebooks} codebooks (need {SAMPLE_RATE}, {HOP_LENGTH}, {NUM_CHANNELS})",
                             file=path)
        return cls(model.to(device), file_sha256(path), cache_dir)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def side_stream(self):
        """A CUDA stream of its own for decoding, so it overlaps generation on the default stream."""
        if self._stream is None:
            self._stream = torch.cuda.Stream(self.device)
        return self._stream

    # ---- encode --------------------------------------------------------------------------------------

    @torch.inference_mode()
    def encode(self, wav, sample_rate: int) -> Tensor:
        """Samples ([N], [N, channels] or [channels, N]; any rate) -> LongTensor[T, 9] on CPU,
        T = ceil(N_44k / 512)."""
        import torchaudio.functional as AF  # heavy, and only voice prompts need it

        x = torch.as_tensor(np.asarray(wav, dtype=np.float32) if not isinstance(wav, Tensor) else wav).float()
        if x.dim() == 2:  # channels are the short axis
            x = x.mean(dim=1 if x.shape[0] > x.shape[1] else 0)
        if x.dim() != 1 or x.numel() == 0:
            raise InputError(f"audio must be non-empty mono or multichannel samples, got shape {list(x.shape)}",
                             field="audio")
        if sample_rate != SAMPLE_RATE:
            x = AF.resample(x, int(sample_rate), SAMPLE_RATE)
        x = x.to(self.device)[None, None]
        x = self.model.preprocess(x, SAMPLE_RATE)
        _, codes, *_ = self.model.encode(x)
        return codes[0].T.long().cpu()

    def encode_file(self, path: str | Path) -> Tensor:
        """Codes [T, 9] for an audio file; the same bytes are never encoded twice."""
        path = Path(path)
        if not path.is_file():
            raise InputError("audio file not found", file=path)
        key = file_sha256(path)
        if key in self._memory:
            return self._memory[key].clone()
        disk = self.cache_dir / f"{key}-{self.checksum[:16]}.npy" if self.cache_dir is not None else None
        if disk is not None and disk.is_file():
            codes = torch.from_numpy(np.load(disk)).long()
        else:
            wav, rate = read_audio_native(path)
            codes = self.encode(wav, rate)
            if disk is not None:
                with atomic_path(disk) as tmp:
                    with open(tmp, "wb") as f:
                        np.save(f, codes.numpy().astype(np.int16))
        self._memory[key] = codes
        return codes.clone()

    # ---- decode --------------------------------------------------------------------------------------
    # One windowed decoder. DAC's decoder is not causal, so padding a short item would change its last
    # frames; instead every item is cut into windows of ``window`` frames (the last one ends at the
    # item's end; interior cuts keep ``context`` frames each side, more than DAC's receptive field, and
    # drop them afterwards) and equal-size windows from all items are decoded ``max_windows`` at a
    # time. Items shorter than ``window`` are one window, batched with items of exactly their length.

    def decode(self, codes: Tensor, window: int = DECODE_WINDOW_FRAMES,
               context: int = DECODE_CONTEXT_FRAMES) -> np.ndarray:
        """Codes [T, 9] -> float32 mono at 44.1 kHz, T * 512 samples (codes outside 0..1023, i.e.
        EOS/PAD/BOS, decode as 0)."""
        return self.decode_batch([codes], window, context)[0]

    def decode_batch(self, codes_list: list[Tensor], window: int = DECODE_WINDOW_FRAMES,
                     context: int = DECODE_CONTEXT_FRAMES, max_windows: int = DECODE_MAX_WINDOWS) -> list[np.ndarray]:
        """Decode many code sequences [T_i, 9] with few DAC calls; each equals its own ``decode``
        to float rounding."""
        return self.start_decode(codes_list, window, context, max_windows).result()

    @torch.inference_mode()
    def start_decode(self, codes_list: list[Tensor], window: int = DECODE_WINDOW_FRAMES,
                     context: int = DECODE_CONTEXT_FRAMES, max_windows: int = DECODE_MAX_WINDOWS) -> "PendingDecode":
        """Queue the decode of many code sequences; ``.result()`` returns the waveforms. On CUDA the
        kernels go to a side stream with no host sync, so the decode runs while the caller starts
        the next generation."""
        if window <= 2 * context:
            raise InputError(f"the window ({window} frames) must be longer than twice the context ({context})",
                             field="window")
        lengths, jobs, codes = [], {}, []  # jobs: window length -> [(item, start, keep_from, keep_to)]
        for i, c in enumerate(codes_list):
            c = torch.as_tensor(c).long()
            if c.dim() != 2 or c.shape[1] != NUM_CHANNELS:
                raise InputError(f"codes must have shape [T, {NUM_CHANNELS}], got {list(c.shape)}",
                                 field=f"codes {i}")
            c = torch.where((c >= 0) & (c < CODEBOOK_SIZE), c, torch.zeros_like(c))  # EOS/PAD/BOS -> 0
            codes.append(c)
            T = c.shape[0]
            lengths.append(T * HOP_LENGTH)
            if T == 0:
                continue
            W = window if T >= window else T
            starts = list(range(0, T - W, W - 2 * context)) + [T - W] if T > W else [0]
            for a in starts:
                lo = a + context if a > 0 else 0
                hi = a + W - context if a + W < T else T
                jobs.setdefault(W, []).append((i, a, lo, hi))
        dac, dev = self.model, self.device
        stream = None
        if dev.type == "cuda":
            stream = self.side_stream()
            stream.wait_stream(torch.cuda.current_stream(dev))
        groups = []
        with torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
            for W, windows in jobs.items():
                for g in range(0, len(windows), max_windows):
                    group = windows[g:g + max_windows]
                    batch = torch.stack([codes[i][a:a + W].T for i, a, _, _ in group]).to(dev)  # [N, 9, W]
                    groups.append((group, dac.decode(dac.quantizer.from_codes(batch)[0])[:, 0].float()))
        return PendingDecode(lengths, groups, HOP_LENGTH, stream)


@dataclass
class PendingDecode:
    """A decode queued by DiaCodec.start_decode; ``result()`` waits for it and returns float32 waveforms."""
    lengths: list[int]  # samples per item
    groups: list  # [([(item, start, keep_from, keep_to)], audio [N, W * hop] on the codec's device)]
    hop: int
    stream: object = None  # the CUDA side stream the kernels were queued on, if any

    def result(self) -> list[np.ndarray]:
        out = [np.zeros(n, dtype=np.float32) for n in self.lengths]
        with torch.cuda.stream(self.stream) if self.stream is not None else contextlib.nullcontext():
            for group, audio in self.groups:
                audio = audio.cpu().numpy()  # waits for this stream's kernels only
                for (i, a, lo, hi), wav in zip(group, audio):
                    out[i][lo * self.hop:hi * self.hop] = wav[(lo - a) * self.hop:(hi - a) * self.hop]
        self.groups = []
        return out
