"""Speech quality: DNSMOS (Microsoft's non-intrusive MOS estimator; the ONNX models ship in the
`speechmos` wheel and run on onnxruntime, CPU). Optional (`qc.mos`): it catches noise, buzz and
garbled audio that the words and the voice can miss."""
from __future__ import annotations

import threading
from importlib import metadata

import numpy as np


class MosEstimator:
    name = "dnsmos"

    def __init__(self):
        try:
            from speechmos import dnsmos
            self.version = metadata.version("speechmos")
        except Exception as e:
            from .words import ListenerUnavailable
            raise ListenerUnavailable(f"DNSMOS (speechmos) cannot load: {type(e).__name__}: {e}") from None
        self._dnsmos = dnsmos
        self.identity = f"dnsmos-speechmos-{self.version}"
        self._lock = threading.Lock()

    def score(self, audio: np.ndarray, sample_rate: int = 44100) -> dict:
        from scipy.signal import resample_poly   # on first use (slow import)

        x = resample_poly(np.asarray(audio, dtype=np.float32), 160, sample_rate // 100)
        x = np.clip(x, -1.0, 1.0)
        if len(x) < 16000:   # DNSMOS scores 9 s windows; pad very short takes to one second
            x = np.pad(x, (0, 16000 - len(x)))
        with self._lock:
            r = self._dnsmos.run(x, 16000)
        return {k: round(float(r[k]), 3) for k in ("ovrl_mos", "sig_mos", "bak_mos", "p808_mos") if k in r}
