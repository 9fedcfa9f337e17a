"""The demo model's corpus: the Python standard library's own source files.

It exists on every machine with Python and needs no network. Files are split
into train and held-out by a hash of their path relative to the stdlib root, so
the split does not depend on which other files a given Python ships.
"""

from __future__ import annotations

import os
import sysconfig
import zlib
from dataclasses import dataclass
from pathlib import Path

#: Directories left out: installed packages, and test suites (large, repetitive fixtures).
EXCLUDED_PARTS = frozenset(
    {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__"}
)
#: One file in HELD_OUT_MODULUS (by path hash) is held out for the evaluation loss.
HELD_OUT_MODULUS = 20
#: Very large generated files (unicode tables and the like) teach little Python.
MAX_FILE_BYTES = 200_000


@dataclass(frozen=True)
class Corpus:
    root: Path
    train: tuple[Path, ...]
    held_out: tuple[Path, ...]


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def is_held_out(relative: str) -> bool:
    return zlib.crc32(relative.encode("utf-8")) % HELD_OUT_MODULUS == 0


def find_corpus(root: Path | None = None) -> Corpus:
    """Every eligible ``.py`` file under the stdlib root, sorted, split into train and held-out."""
    root = root or stdlib_root()
    train: list[Path] = []
    held_out: list[Path] = []
    for path in sorted(_python_files(root)):
        relative = path.relative_to(root).as_posix()
        (held_out if is_held_out(relative) else train).append(path)
    return Corpus(root, tuple(train), tuple(held_out))


def _python_files(root: Path) -> list[Path]:
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        # Prune in place so os.walk never descends into site-packages (often larger than the stdlib).
        dirs[:] = [d for d in dirs if d not in EXCLUDED_PARTS]
        for name in files:
            path = Path(folder, name)
            if name.endswith(".py") and path.stat().st_size <= MAX_FILE_BYTES:
                found.append(path)
    return found


def read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")
