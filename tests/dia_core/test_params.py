"""SamplingParams: one set of defaults, two levels of checks. The constructor takes whatever the
model can use (a library caller may ask for a 60-token clip); a project file must stay within the
hosted API's ranges (RANGES), and its errors name file:line: field."""
from __future__ import annotations

from dataclasses import fields

import pytest

from dia_core.errors import InputError
from dia_core.params import RANGES, SamplingParams, check_param
from dia_core.script.project import load_project

PROJECT = """\
title: Short
author: Tests
manuscript: book.md
voices:
  reader:
    seed: 9
narrator_voice: reader
sampling:
  max_new_tokens: {tokens}
"""


def test_ranges_and_defaults_come_from_the_fields():
    assert RANGES == {"temperature": (0.1, 2.0, 1.3), "top_p": (0.1, 1.0, 0.95), "cfg_scale": (1.0, 5.0, 4.0),
                      "cfg_filter_top_k": (10, 100, 35), "speed_factor": (0.5, 1.5, 0.94),
                      "max_new_tokens": (500, 4096, 3072)}
    assert {f.name: f.default for f in fields(SamplingParams)} == {k: v[2] for k, v in RANGES.items()}


def test_the_model_accepts_what_the_project_file_refuses():
    assert SamplingParams(max_new_tokens=60).max_new_tokens == 60
    assert SamplingParams(cfg_filter_top_k=500, temperature=3.0).cfg_filter_top_k == 500
    with pytest.raises(InputError, match="max_new_tokens: must be between 500 and 4096, got 60"):
        check_param("max_new_tokens", 60)
    check_param("temperature", 0)  # greedy: allowed at both levels
    SamplingParams(temperature=0)


@pytest.mark.parametrize("tokens,ok", [(60, False), (499, False), (1000, True), (4096, True), (4097, False)])
def test_project_file_max_new_tokens_follows_the_hosted_api(tmp_path, tokens, ok):
    (tmp_path / "book.md").write_text("# One\n\nSome text.\n")
    path = tmp_path / "project.yaml"
    path.write_text(PROJECT.format(tokens=tokens))
    if ok:
        assert load_project(path).sampling.max_new_tokens == tokens
        return
    with pytest.raises(InputError) as e:
        load_project(path)
    assert (e.value.line, e.value.field) == (9, "sampling.max_new_tokens")
    assert str(e.value) == f"{path}:9: sampling.max_new_tokens: must be between 500 and 4096, got {tokens}"
