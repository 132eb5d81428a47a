"""One render of both example projects with listening on, shared by the listening tests."""
import shutil
from pathlib import Path

import pytest

from dia_core.listen.listener import Listener
from dia_core.production import jobs, takes
from dia_core.production.options import RenderOptions

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="package")
def rendered(tmp_path_factory):
    """Both examples' takes generated and listened to once; counts the takes actually listened to."""
    root = tmp_path_factory.mktemp("listened")
    calls = []
    original = Listener.listen

    def counting(self, audio, text, *a, **k):
        calls.append(text)
        return original(self, audio, text, *a, **k)
    Listener.listen = counting
    try:
        out = {}
        for name in ("short-audiobook", "podcast-episode"):
            shutil.copytree(REPO / "projects" / name, root / name, ignore=shutil.ignore_patterns(".dia-studio", "out"))
            job = jobs.open_job(root / name / "project.yaml", RenderOptions(draft=True, store=str(root / "store")))
            prompts = takes.prepare_voices(job)
            first = takes.generate_takes(job, prompts)
            listened_first = len(calls)
            again = takes.generate_takes(job, prompts)
            out[name] = dict(job=job, first=first, again=again, listened=listened_first,
                             relistened=len(calls) - listened_first)
            calls.clear()
        return out
    finally:
        Listener.listen = original


