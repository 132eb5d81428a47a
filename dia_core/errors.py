"""User-facing errors: one clear line naming the file, line and field; the CLI exits 2 on them."""
from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """Bad input from a user (manifest, manuscript, audio, parameters).

    Rendered as ``file:line: field: message``; any part may be absent.
    """

    def __init__(self, message: str, *, file: str | Path | None = None, line: int | None = None,
                 field: str | None = None):
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line
        self.field = field
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line else "") + ": "
        field = f"{self.field}: " if self.field else ""
        return f"{where}{field}{self.message}"


class OutOfMemory(Exception):
    """The accelerator ran out of memory for this batch; the caller retries with a smaller one."""
