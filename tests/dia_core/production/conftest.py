"""The delivery tests finish real speech: they share the audio tests' session-scoped espeak-ng clips."""
from tests.dia_core.audio.conftest import speech_clips  # noqa: F401  (fixture)
