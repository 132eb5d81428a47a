"""The true peak oversamples only the stretches where it can matter: the answers are the dense ones."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import resample_poly

from dia_core.audio import dynamics, meter


def _speechlike(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n).astype(np.float32) * np.float32(0.02)
    for start in rng.integers(0, n - 400, size=40):   # sparse loud bursts with inter-sample peaks
        t = np.arange(300)
        x[start:start + 300] += (0.9 * np.sin(2 * np.pi * 0.23 * t + rng.uniform(0, 6))).astype(np.float32)
    return x


@pytest.mark.parametrize("seed", [0, 1])
def test_true_peak_equals_dense_oversampling(seed):
    x = _speechlike(300_000, seed)
    dense = max(float(np.abs(x).max()), float(np.abs(resample_poly(x.astype(np.float64), 4, 1)).max()))
    assert meter._true_peak_linear(x) == pytest.approx(dense, rel=1e-12)
    assert meter._true_peak_linear(x) > float(np.abs(x).max())   # the bursts do peak between samples


@pytest.mark.parametrize("ceiling", [-1.0, -6.0, -30.0])
def test_limiter_gain_equals_the_dense_envelope(ceiling, monkeypatch):
    x = _speechlike(300_000, 2)
    sparse = dynamics.limiter_gain(x, ceiling)
    dense_env = meter._true_peak_envelope
    monkeypatch.setattr(dynamics, "_true_peak_envelope", lambda x, a, b, floor=None: dense_env(x, a, b))
    dense = dynamics.limiter_gain(x, ceiling)
    np.testing.assert_array_equal(sparse, dense)
    assert (dense < 1).any()
