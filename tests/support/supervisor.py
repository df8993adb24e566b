"""A worker under a supervisor that restarts it when it exits, as Kubernetes or systemd would."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable


class Supervisor:
    def __init__(self, start: Callable[[], subprocess.Popen], backoff_s: float = 1.0) -> None:
        self._start = start
        self.backoff_s = backoff_s
        self.process: subprocess.Popen | None = None
        self.restarts = 0
        self.exit_codes: list[int] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "Supervisor":
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stopping.is_set():
            self.process = self._start()
            code = self.process.wait()
            if self._stopping.is_set():
                return
            self.exit_codes.append(code)
            self.restarts += 1
            time.sleep(self.backoff_s)

    def kill(self) -> None:
        """Stop supervising and kill the worker (-9): the node is gone."""
        self._stopping.set()
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._thread.join(timeout=10)

    def stop(self) -> None:
        self._stopping.set()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._thread.join(timeout=10)
