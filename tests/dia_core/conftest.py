"""Fixtures shared by the tiny-model tests in tests/dia_core/ (test_generate, test_fast_path, test_model,
test_codec). Nothing here is autouse: a module opts in, so the other modules here (and audio/) run as
before. Torch is imported only when a fixture is used."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def one_torch_thread():
    """Opt in with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``: torch runs on one
    intra-op thread for the whole module (tiny models gain nothing from more; see single_thread)."""
    from tests.tiny_models import single_thread

    with single_thread():
        yield


@pytest.fixture(scope="module")
def model(tmp_path_factory, one_torch_thread):
    """A tiny random Dia model (reference layout, seed 1), one per test module: modules may mutate
    it (e.g. set ``model.codec``) without affecting each other."""
    from dia_core.dia.model import DiaModel
    from tests.tiny_models import write_tiny_dia_checkpoint

    return DiaModel.from_pretrained(write_tiny_dia_checkpoint(tmp_path_factory.mktemp("m"), "reference", seed=1))
