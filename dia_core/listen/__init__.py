"""Listening to takes: speech recognition against the text (words), speaker similarity (voice) and
an optional MOS estimate (quality). Pure measurement: the take loop (dia_core.production) decides."""
