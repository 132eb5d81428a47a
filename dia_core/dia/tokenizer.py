"""Dia's text tokenizer: UTF-8 bytes, one token per byte, [S1] -> 0x01 and [S2] -> 0x02.

No BOS/EOS; 0 is padding. The encoder has 1024 positions and the reference silently truncates
longer text; here that is an error that says how long the text is.
"""
from __future__ import annotations

import re

import torch

from ..errors import InputError
from ..params import MAX_TEXT_BYTES

SPEAKER_TOKENS = {"[S1]": 1, "[S2]": 2}
# Anything that looks like a speaker tag ([S3], [s1], [ S1 ], [Speaker 2]) must be exactly [S1] or [S2]:
# Dia would otherwise read it as literal text and speak "bracket s three".
_TAG_LIKE = re.compile(r"\[\s*[Ss](?:peaker|PEAKER)?\s*\d*\s*\]")


def encode_text(text: str, *, max_bytes: int = MAX_TEXT_BYTES, field: str = "text") -> list[int]:
    """Token ids for ``text``; InputError (naming ``field``) for empty, mistagged or too long text."""
    if not isinstance(text, str):
        raise InputError(f"must be a string, got {type(text).__name__}", field=field)
    for m in _TAG_LIKE.finditer(text):
        if m.group(0) not in SPEAKER_TOKENS:
            raise InputError(f"unknown speaker tag {m.group(0)!r} at character {m.start()}: "
                             "only [S1] and [S2] are supported (upper-case S, no spaces)", field=field)
    if "\x00" in text or "\x01" in text or "\x02" in text:
        raise InputError("contains a control character (NUL, \\x01 or \\x02) reserved for padding and "
                         "speaker tags", field=field)
    if not _TAG_LIKE.sub("", text).strip():
        raise InputError("is empty (no words besides speaker tags)", field=field)

    ids: list[int] = []
    for i, part in enumerate(re.split(r"(\[S[12]\])", text)):
        if i % 2:
            ids.append(SPEAKER_TOKENS[part])
        else:
            ids.extend(part.encode("utf-8"))
    if len(ids) > max_bytes:
        raise InputError(f"is {len(ids)} bytes (UTF-8, each [S1]/[S2] tag counting 1) but Dia's text encoder "
                         f"holds at most {max_bytes}; split it into shorter segments", field=field)
    return ids


def encode_batch(token_lists: list[list[int]], device=None) -> torch.Tensor:
    """Right-pad token lists with 0 into a LongTensor[B, S]."""
    width = max(len(t) for t in token_lists)
    out = torch.zeros(len(token_lists), width, dtype=torch.long)
    for i, ids in enumerate(token_lists):
        out[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return out.to(device) if device is not None else out
