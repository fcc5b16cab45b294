"""A progress line for long audits. It is drawn only on an interactive terminal: piped output,
CI logs and editors must see nothing but findings."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TextIO

# Below this many files a run is quick enough that a progress line would only flicker.
MIN_FILES = 100


class TerminalProgress:
    """``checked 120/3000 files`` redrawn in place on stderr, erased when the run ends."""

    def __init__(self, stream: TextIO, min_files: int = MIN_FILES) -> None:
        self.stream = stream
        self.min_files = min_files
        self.drawn = False
        self.last = -1

    def __call__(self, done: int, total: int) -> None:
        if total < self.min_files:
            return
        percent = done * 100 // total
        if percent == self.last and done != total:
            return  # redraw once per percent, not once per file
        self.last = percent
        self.stream.write(f"\rchecked {done}/{total} files ({percent}%)")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.drawn = False


def progress_for(stream: TextIO, environ: Mapping[str, str] | None = None) -> TerminalProgress | None:
    """A progress reporter when ``stream`` is a terminal outside CI, else ``None``."""
    environ = os.environ if environ is None else environ
    if environ.get("CI", "").strip().lower() not in ("", "0", "false"):
        return None
    try:
        interactive = stream.isatty()
    except (AttributeError, ValueError):
        return None
    return TerminalProgress(stream) if interactive else None
