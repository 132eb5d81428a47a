"""The DAC 44.1 kHz codec Dia speaks: 512-sample hop (86.13 frames/s), 9 codebooks of 1024 entries.

Encodes voice prompts (any format soundfile or ffmpeg reads, any rate, stereo or mono) to codes
[T, 9], with a cache keyed by the file's sha256 (and the codec's, on disk), and decodes code
sequences to float32 mono audio in chunks so memory stays bounded for long sequences.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..atomic import atomic_path
from ..audiofile import read_audio_native
from ..files import file_sha256
from ..errors import InputError
from ..params import HOP_LENGTH, NUM_CHANNELS, SAMPLE_RATE

# The DAC decoder is convolutional with a receptive field of about 11 latent frames each side, so
# decoding a chunk with this much context on both sides reproduces the unchunked output.
DECODE_CONTEXT_FRAMES = 32
DECODE_CHUNK_FRAMES = 1024


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
        import dac

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
        import torchaudio.functional as AF

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

    @torch.inference_mode()
    def decode(self, codes: Tensor, chunk_frames: int = DECODE_CHUNK_FRAMES,
               context_frames: int = DECODE_CONTEXT_FRAMES) -> np.ndarray:
        """Codes [T, 9] -> float32 mono at 44.1 kHz, T * 512 samples. Decoded ``chunk_frames`` at a time
        with ``context_frames`` of context each side (cut off afterwards)."""
        codes = torch.as_tensor(codes).long()
        if codes.dim() != 2 or codes.shape[1] != NUM_CHANNELS:
            raise InputError(f"codes must have shape [T, {NUM_CHANNELS}], got {list(codes.shape)}", field="codes")
        T = codes.shape[0]
        if T == 0:
            return np.zeros(0, dtype=np.float32)
        codes = torch.where((codes >= 0) & (codes < 1024), codes, torch.zeros_like(codes))  # EOS/PAD/BOS -> 0
        codes = codes.T[None].to(self.device)  # [1, 9, T]
        pieces = []
        for start in range(0, T, chunk_frames):
            end = min(start + chunk_frames, T)
            lo, hi = max(0, start - context_frames), min(T, end + context_frames)
            z = self.model.quantizer.from_codes(codes[:, :, lo:hi])[0]
            audio = self.model.decode(z)[0, 0]
            pieces.append(audio[(start - lo) * HOP_LENGTH:(end - lo) * HOP_LENGTH].float().cpu())
        return torch.cat(pieces).numpy().astype(np.float32, copy=False)
