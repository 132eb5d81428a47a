"""Audio finishing and delivery: stitch, tempo, loudness, QC, export, captions, manifests.

Everything works on float32 mono at 44.1 kHz until the final encode. No Prefect imports.
"""
from __future__ import annotations

__all__ = ["stitch", "tempo", "dynamics", "meter", "qc", "encode", "m4b", "captions", "profiles",
           "FINISHING_REVISION"]

# The finishing chain's revision: part of every chapter's and the book's inputs hash, so a change
# that alters finished audio (a tempo engine, the limiter, an encoder setting, caption timing)
# re-finishes earlier deliveries instead of mixing old and new chapters in one book. Bump it with
# such a change; the take store (generation) is keyed separately and is not invalidated.
#   2: Rubber Band in process (pedalboard, offline R2) instead of ffmpeg's realtime filter;
#      MP3 level correction predicted from an excerpt.
#   3: ffmpeg atempo batched per chapter as the default engine; one gain pass after a sample-peak
#      pilot (level within 0.1 dB); LAME -q 5.
FINISHING_REVISION = 3
