"""Temporary files and folders that exports write beside their targets, then move into place.

A temporary name is `.<target name>.<pid>-<thread><TEMP_SUFFIX>`: this process knows which of its own are being
written (`temp_path` registers one, `discard` removes it from disk and from the register), and
`remove_stale_temps` deletes those left by a crashed export (a process that is gone, or this one with no export
writing it now), files and folders alike.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from pathlib import Path

TEMP_SUFFIX = ".treedistill-tmp"
_TEMP_NAME = re.compile(r"^\..+\.(\d+)-(\d+)" + re.escape(TEMP_SUFFIX) + "$")
_open_temps: set[Path] = set()  # temporary files and folders this process is writing right now
_temps_lock = threading.Lock()


def temp_path(path: Path) -> Path:
    """A temporary name beside `path`, registered as being written by this process until `discard` or `keep`."""
    temp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}{TEMP_SUFFIX}")
    with _temps_lock:
        _open_temps.add(temp)
    return temp


def keep(temp: Path, target: Path) -> None:
    """Move the finished `temp` into place at `target` (atomically) and forget it."""
    os.replace(temp, target)
    _forget(temp)


def discard(temp: Path) -> None:
    """Remove `temp` (a file or a folder) if it is still there, and forget it."""
    if temp.is_dir() and not temp.is_symlink():
        shutil.rmtree(temp, ignore_errors=True)
    else:
        temp.unlink(missing_ok=True)
    _forget(temp)


def _forget(temp: Path) -> None:
    with _temps_lock:
        _open_temps.discard(temp)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(directory: Path) -> list[Path]:
    """Delete our temporary files and folders left in `directory` by exports that crashed: those of a process that
    is gone, or of this process but no export writing them now. Returns what was removed."""
    removed: list[Path] = []
    if not directory.is_dir():
        return removed
    with _temps_lock:
        running = set(_open_temps)
    for entry in directory.iterdir():
        match = _TEMP_NAME.match(entry.name)
        if not match or entry in running:
            continue
        pid = int(match.group(1))
        if pid == os.getpid() or not _process_alive(pid):
            discard(entry)
            removed.append(entry)
    return removed
