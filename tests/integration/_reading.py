"""Watching a real process read a file: which descriptor it holds and how far it got
(/proc/<pid>/fdinfo), so a test can change the file while the read is under way."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path


def read_position(pid: int, target: Path) -> int | None:
    """The furthest offset of any descriptor ``pid`` has open on ``target`` (None if it
    has none)."""
    want = os.path.realpath(target)
    best: int | None = None
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") != want:
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                pos = int(f.readline().split()[1])
        except (OSError, ValueError, IndexError):
            continue
        best = pos if best is None else max(best, pos)
    return best


def wait_reading(proc: subprocess.Popen[bytes], target: Path, at_least: int) -> int:
    """Wait until ``proc`` has read at least ``at_least`` bytes of ``target``; returns
    the offset seen. Fails if the process ends first."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the process ended before reading {target}")
        pos = read_position(proc.pid, target)
        if pos is not None and pos >= at_least:
            return pos
        time.sleep(0.001)
    raise AssertionError(f"the process never read {at_least} bytes of {target}")


def random_file(path: Path, size: int) -> None:
    """``size`` incompressible bytes that share no chunk with anything else."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 16 << 20)
            f.write(os.urandom(n))
            left -= n
