"""A planned tiny project with a hand-made chapter manifest and store entries: the review library
and app are tested without rendering (the browser test in tests/flows renders for real)."""
from __future__ import annotations

import pytest

from tests.review_fixture import make_planned


@pytest.fixture
def planned(tmp_path):
    return make_planned(tmp_path)
