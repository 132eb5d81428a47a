import shutil
from pathlib import Path

import pytest

from tests.listening_off import without_listening

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _prefect(prefect_api):
    """Every flow test runs against the one session-scoped test server."""
    yield


@pytest.fixture
def project_copy(tmp_path):
    """Copy an example project out of the repo so renders never write into the checkout."""
    def copy(name: str) -> Path:
        dst = tmp_path / "projects" / name
        shutil.copytree(REPO / "projects" / name, dst, ignore=shutil.ignore_patterns(".dia-studio", "out"))
        return without_listening(dst / "project.yaml")
    return copy
