"""The podcast loudness profiles by name: apple (-16 LUFS, -1 dBTP) and spotify (-14 LUFS, -1 dBTP)."""
from __future__ import annotations

import numpy as np
import pytest

from dia_core.audio import dynamics, profiles
from dia_core.settings import PROFILES, DeliverySettings


@pytest.mark.parametrize("name,lufs", [("apple", -16.0), ("spotify", -14.0), ("podcast", -16.0)])
def test_profile_targets_and_finish(name, lufs):
    assert name in PROFILES
    settings = DeliverySettings(profile=name)
    assert profiles.profile_target(settings) == ("integrated_lufs", lufs, -1.5)
    assert profiles.profile_limits(settings) == {"integrated_lufs": {"min": lufs - 1, "max": lufs + 1},
                                                 "true_peak_dbtp": {"max": -1.0}}
    rng = np.random.default_rng(3)
    t = np.arange(44100 * 6) / 44100
    audio = (0.05 * np.sin(2 * np.pi * 220 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
             + 0.01 * rng.standard_normal(len(t))).astype(np.float32)
    finished, _ = dynamics.finish(audio, settings)
    report = profiles.check_audio(finished, settings)
    assert report.passed, report.failures
    assert abs(report.measurements.integrated_lufs - lufs) < 0.5
    assert report.measurements.true_peak_dbtp <= -1.0
