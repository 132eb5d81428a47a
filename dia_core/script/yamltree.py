"""YAML read safely into a tree of values that keep their line numbers, and the validator that turns
such a tree into typed settings with ``file:line: field: problem`` errors.

The YAML is composed with the safe loader and converted by hand, so that:

* only the standard scalar/sequence/mapping tags are accepted (``!!python/object`` and friends,
  ``!!binary``, ``!!set``... are errors);
* duplicate keys are errors (PyYAML silently keeps the last one);
* alias expansion is capped (billion-laughs manifests fail fast) and recursive aliases are errors.
"""
from __future__ import annotations

import difflib
import math
import re
from pathlib import Path
from typing import Any

import yaml

from ..errors import InputError

MAX_YAML_NODES = 50_000          # nodes visited while expanding aliases
CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

_STD = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_STD + t for t in ("str", "int", "float", "bool", "null")}


# --------------------------------------------------------------------------------------------
# YAML -> located tree
# --------------------------------------------------------------------------------------------

class Located:
    """A YAML value with its 1-based line. Mappings: dict[str, Located] plus key lines; sequences: list[Located]."""
    __slots__ = ("value", "line", "key_lines")

    def __init__(self, value: Any, line: int, key_lines: dict[str, int] | None = None):
        self.value = value
        self.line = line
        self.key_lines = key_lines

    def plain(self) -> Any:
        if isinstance(self.value, dict):
            return {k: v.plain() for k, v in self.value.items()}
        if isinstance(self.value, list):
            return [v.plain() for v in self.value]
        return self.value


def parse_yaml(text: str, file: str) -> Located | None:
    """Compose ``text`` with the safe loader and convert it to a :class:`Located` tree."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            line = mark.line + 1 if mark else None
            msg = " ".join(p for p in (e.context, e.problem) if p) or "malformed YAML"
            raise InputError(f"malformed YAML: {msg}", file=file, line=line) from None
        except yaml.YAMLError as e:
            raise InputError(f"malformed YAML: {e}", file=file) from None
        if node is None:
            return None
        return _Converter(loader, file).convert(node)
    finally:
        loader.dispose()


class _Converter:
    def __init__(self, loader: yaml.SafeLoader, file: str):
        self.loader = loader
        self.file = file
        self.visited = 0
        self.stack: set[int] = set()

    def err(self, node, msg):
        return InputError(msg, file=self.file, line=node.start_mark.line + 1)

    def convert(self, node) -> Located:
        self.visited += 1
        if self.visited > MAX_YAML_NODES:
            raise self.err(node, f"manifest expands to more than {MAX_YAML_NODES} YAML nodes "
                                 "(alias expansion bomb?)")
        line = node.start_mark.line + 1
        if id(node) in self.stack:
            raise self.err(node, "recursive YAML alias")
        if isinstance(node, yaml.ScalarNode):
            if node.tag == _STD + "timestamp":
                return Located(node.value, line)
            if node.tag not in _SCALAR_TAGS:
                raise self.err(node, f"YAML tag {node.tag!r} is not allowed (plain values only)")
            try:
                return Located(self.loader.construct_object(node, deep=True), line)
            except yaml.YAMLError as e:
                raise self.err(node, f"bad value: {getattr(e, 'problem', e)}") from None
        self.stack.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                if node.tag != _STD + "seq":
                    raise self.err(node, f"YAML tag {node.tag!r} is not allowed")
                return Located([self.convert(n) for n in node.value], line)
            if isinstance(node, yaml.MappingNode):
                if node.tag != _STD + "map":
                    raise self.err(node, f"YAML tag {node.tag!r} is not allowed")
                return self._mapping(node, line)
        finally:
            self.stack.discard(id(node))
        raise self.err(node, "unsupported YAML node")  # pragma: no cover

    def _mapping(self, node, line) -> Located:
        out: dict[str, Located] = {}
        key_lines: dict[str, int] = {}
        merged: dict[str, Located] = {}
        merged_lines: dict[str, int] = {}
        for knode, vnode in node.value:
            if knode.tag == _STD + "merge":   # `<<: *defaults`; explicit keys win
                sources = vnode.value if isinstance(vnode, yaml.SequenceNode) else [vnode]
                for src in sources:
                    m = self.convert(src)
                    if not isinstance(m.value, dict):
                        raise self.err(vnode, "merge key `<<` needs a mapping")
                    for k, v in m.value.items():
                        if k not in merged:
                            merged[k] = v
                            merged_lines[k] = m.key_lines[k]
                continue
            k = self.convert(knode)
            if isinstance(k.value, bool) or not isinstance(k.value, (str, int)):
                raise self.err(knode, f"mapping keys must be plain strings, got {k.value!r}")
            key = str(k.value)
            if key in out:
                raise self.err(knode, f"duplicate key {key!r} (first at line {key_lines[key]})")
            key_lines[key] = k.line
            out[key] = self.convert(vnode)
        for k, v in merged.items():
            if k not in out:
                out[k] = v
                key_lines[k] = merged_lines[k]
        return Located(out, line, key_lines)


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------

class Validator:
    """Validation context: the manifest label for error messages and the project root."""

    def __init__(self, file: str, root: Path):
        self.file = file
        self.root = root
        self.warnings: list[str] = []

    def error(self, msg: str, y: Located | None = None, path: str | None = None, line: int | None = None):
        return InputError(msg, file=self.file, line=line if line is not None else (y.line if y else None),
                          field=path)

    def warn(self, msg: str, y: Located | None, path: str | None):
        self.warnings.append(str(InputError(msg, file=self.file, line=y.line if y else None, field=path)))

    def mapping(self, y: Located, path: str, allowed: set[str] | tuple[str, ...]) -> dict[str, Located]:
        if not isinstance(y.value, dict):
            raise self.error(f"must be a mapping, got {kind(y.value)}", y, path)
        for k in y.value:
            if k not in allowed:
                hint = suggest(k, allowed)
                raise self.error(f"unknown key{hint}", path=join(path, k), line=y.key_lines[k])
        return y.value

    def string(self, y: Located, path: str, *, allow_empty=False, max_len=10_000) -> str:
        if not isinstance(y.value, str):
            raise self.error(f"must be a string, got {kind(y.value)}", y, path)
        s = y.value.strip()
        if not s and not allow_empty:
            raise self.error("must not be empty", y, path)
        if len(s) > max_len:
            raise self.error(f"too long ({len(s)} characters, limit {max_len})", y, path)
        if CONTROL_RE.search(s):
            raise self.error("contains control characters", y, path)
        return s

    def number(self, y: Located, path: str, low: float, high: float) -> float:
        v = y.value
        if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
            raise self.error(f"must be a number, got {kind(v)}", y, path)
        if not low <= v <= high:
            raise self.error(f"must be between {low:g} and {high:g}, got {v!r}", y, path)
        return float(v)

    def integer(self, y: Located, path: str, low: int, high: int) -> int:
        v = y.value
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.error(f"must be an integer, got {kind(v)}", y, path)
        if not low <= v <= high:
            raise self.error(f"must be between {low} and {high}, got {v!r}", y, path)
        return v

    def boolean(self, y: Located, path: str) -> bool:
        if not isinstance(y.value, bool):
            raise self.error(f"must be true or false, got {kind(y.value)}", y, path)
        return y.value

    def path(self, y: Located, path: str, *, must_exist: bool = True, file: bool = True) -> Path:
        s = self.string(y, path, max_len=4096)
        p = Path(s).expanduser()
        try:
            full = (p if p.is_absolute() else self.root / p).resolve()
        except (RuntimeError, OSError) as e:  # a symlink loop (RuntimeError on Python < 3.13)
            raise self.error(f"cannot resolve path {s!r}: symlink loop or unreadable link ({e})", y, path) from None
        if not full.is_relative_to(self.root):
            raise self.error(f"path {s!r} escapes the project directory", y, path)
        if must_exist:
            if not full.exists():
                raise self.error(f"file not found: {s}", y, path)
            if file and not full.is_file():
                raise self.error(f"not a regular file: {s}", y, path)
        return full


def kind(v) -> str:
    if v is None:
        return "nothing"
    if isinstance(v, dict):
        return "a mapping"
    if isinstance(v, list):
        return "a list"
    return repr(v)


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def suggest(key: str, allowed) -> str:
    close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (allowed: {', '.join(sorted(allowed))})"
