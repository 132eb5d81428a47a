"""What a finished render looks like: the reference outputs and how others are compared with them."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

NAME = "tiny-bell"
TIMESTAMPS = ("started_at", "finished_at", "created_at")
OWNER_FILE = ".dia-studio-owner.json"   # dia_core.production.folder: which project owns the folder
SUPERSEDED = ".superseded"              # files a later render no longer delivers, moved aside


def render_args(yaml: Path, out: Path, *extra) -> list:
    return ["render", yaml, "--draft", "--out", out, "--no-progress", *extra]


def normalized_json(path: Path) -> dict:
    data = json.loads(path.read_text())
    for k in TIMESTAMPS:
        data.pop(k, None)
    return data


def published(out: Path) -> dict[str, Path]:
    """Files with a final name under the project's output folder: the delivery. Temps are excluded,
    and so are the ownership record (it names the project's own path, which differs between
    copies of the fixture: checked apart, see owner) and what a render moved aside into
    .superseded/ (a re-run after a completed render moves the old manifest.json there)."""
    root = out / NAME
    if not root.exists():
        return {}
    return {rel: p for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.startswith(".tmp-")
            and (rel := p.relative_to(root).as_posix()) != OWNER_FILE and not rel.startswith(SUPERSEDED + "/")}


def owner(out: Path) -> str | None:
    """The project manifest path the output folder's ownership record names."""
    path = out / NAME / OWNER_FILE
    return json.loads(path.read_text())["project"] if path.exists() else None


def temps(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob(".tmp-*")) if folder.exists() else []


@dataclass
class Reference:
    files: dict[str, bytes]      # media and captions: exact bytes
    manifests: dict[str, dict]   # json files: normalized
    seconds: float               # wall time of the clean render
    store: Path                  # the reference project's store (copied by corruption scenarios)


def same_as_reference(rel: str, path: Path, ref: Reference) -> None:
    if rel.endswith(".json"):
        assert rel in ref.manifests, f"unexpected file {rel}"
        assert normalized_json(path) == ref.manifests[rel], f"{rel} differs from the clean render's"
    else:
        assert rel in ref.files, f"unexpected file {rel}"
        assert path.read_bytes() == ref.files[rel], f"{rel} is not byte-identical to the clean render's"
