"""Sampling profiles of a running worker with py-spy, summarised as the hottest functions.

py-spy samples another process from outside (no code change, little overhead). The raw
output is kept next to the results so a flame graph can be drawn from it later
(e.g. with `flamegraph.pl` or speedscope).
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path


def py_spy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


class Sampler:
    def __init__(self, pid: int, out: Path, rate: int = 100) -> None:
        binary = py_spy()
        if binary is None:
            raise RuntimeError("py-spy is not installed: pip install py-spy")
        self.out = out
        self.proc = subprocess.Popen(
            [binary, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw", "--output", str(out),
             "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


LINE = re.compile(r":\d+\)$")
IDLE = ("select (selectors.py", "EpollSelector.select", "_worker (concurrent/futures/thread.py", "wait (threading.py")


def summarise(raw: Path, top: int = 15) -> tuple[int, list[tuple[float, str]], list[tuple[float, str]]]:
    """(busy samples, hottest functions by own time, by inclusive time), as shares of busy samples.

    Samples whose innermost frame is an idle wait (epoll, a thread pool waiting for work) are
    left out, so the shares say where the CPU goes.
    """
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    busy = 0
    if not raw.exists():
        return 0, [], []
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        # the first frame names the process/thread; lines are dropped so a function counts once
        frames = [LINE.sub(")", frame) for frame in stack.split(";")[1:]]
        if not frames or any(frames[-1].startswith(idle) or idle in frames[-1] for idle in IDLE):
            continue
        n = int(count)
        busy += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    if not busy:
        return 0, [], []
    def share(counter: Counter[str]) -> list[tuple[float, str]]:
        return [(n / busy, name) for name, n in counter.most_common(top)]

    return busy, share(own), share(inclusive)
