"""Audio finishing and delivery: stitch, tempo, loudness, QC, export, captions, manifests.

Everything works on float32 mono at 44.1 kHz until the final encode. No Prefect imports.
"""
from __future__ import annotations

__all__ = ["io", "stitch", "tempo", "loudness", "qc", "export", "captions", "manifest"]
