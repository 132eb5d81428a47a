"""Suite-wide fixtures. One Prefect test server for the whole session (per pytest-xdist worker:
`make test` runs two), started only when a test asks for it (flow tests and subprocess renders);
the rest of the suite never starts one."""
from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory):
    """Session-scoped prefect_test_harness; yields its API URL for subprocesses and workers."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_HOME", str(tmp_path_factory.mktemp("prefect-home")))
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield PREFECT_API_URL.value()


@pytest.fixture
def subprocess_env(prefect_api, tmp_path):
    """Environment for `dia-studio` subprocesses: talk to the session's test server."""
    env = dict(os.environ)
    env.update(PREFECT_API_URL=prefect_api, PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_HOME=str(tmp_path / "prefect-home"))
    env.pop("DIA_STUDIO_FAULT", None)
    return env
