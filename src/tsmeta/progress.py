"""Progress of long jobs (simulation tasks, theory integrations, sweep members).

On an interactive terminal (the command line, stderr a TTY) a tqdm bar; otherwise plain
lines, so that a Snakemake log stays readable and jobs running side by side do not garble
the terminal. A Snakemake job writes its lines both to its log file and to the terminal
that runs Snakemake (`echo_to`, set by `stages.log_to`). A line is written at most every
`min_interval` seconds, when another tenth of the work is done or `MAX_INTERVAL` seconds
have passed, and once at the end; a job shorter than `min_interval` writes only that last
line.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager

MAX_INTERVAL = 60.0  # seconds: a line at least this often, however little was done
_ECHO: list = []  # further streams that get every progress line (the Snakemake terminal)
_SILENT: list = []  # inside `silenced()`: no progress at all (the Python API's progress=False)


@contextmanager
def echo_to(stream):
    """Also write progress lines to `stream` inside the `with` block."""
    _ECHO.append(stream)
    try:
        yield
    finally:
        _ECHO.remove(stream)


@contextmanager
def silenced():
    """No progress bar or line inside the `with` block."""
    _SILENT.append(True)
    try:
        yield
    finally:
        _SILENT.pop()


def in_notebook() -> bool:
    """True in a Jupyter kernel (stderr is no terminal there, but a widget bar is wanted)."""
    shell = sys.modules.get("IPython")
    try:
        return shell is not None and "ipykernel" in sys.modules and shell.get_ipython() is not None
    except AttributeError:
        return False


def write_line(text: str) -> None:
    """One line to stderr (a log file under Snakemake) and to every echo stream."""
    streams = [sys.stderr] + [s for s in _ECHO if s is not sys.stderr]
    for stream in streams:
        try:
            print(text, file=stream, flush=True)
        except (OSError, ValueError):  # a closed terminal must not stop the job
            pass


def _duration(seconds: float) -> str:
    seconds = int(round(max(seconds, 0.0)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """`total` units of work from `start`; `update(done, **info)`, then `close(**info)`.

    info is shown as `key = value` (e.g. alpha); `eta=False` for a coordinate whose rate is
    not steady (alpha of an ODE, which slows down): shown as `alpha 12 of 450`, without the
    rate and ETA that would mislead. enabled=False: silent.
    """

    def __init__(self, total: float, label: str, unit: str = "", start: float = 0,
                 enabled: bool = True, eta: bool = True, min_interval: float = 5.0):  # fmt: skip
        self.total, self.label, self.unit, self.eta = total, label, unit, eta
        self.start = self.done = start
        self.enabled = enabled and not _SILENT
        self.min_interval = min_interval
        self.t0 = self.last_time = time.monotonic()
        self.last_done = start
        self.bar = None
        # a bar on an interactive terminal, the notebook widget in Jupyter (tqdm.auto)
        if self.enabled and not _ECHO and (_isatty(sys.stderr) or in_notebook()):
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=start, unit=f" {unit}" if unit else "it",
                            desc=label[:50], file=sys.stderr, dynamic_ncols=True)  # fmt: skip

    def _line(self, prefix: str, info: dict) -> str:
        elapsed = time.monotonic() - self.t0
        if self.eta:  # a count: 120/900 tasks
            parts = [f"{self.done:g}/{self.total:g} {self.unit}".strip()]
        else:  # a coordinate whose rate is not steady: alpha 12 of 450
            parts = [f"{self.unit} {self.done:.4g} of {self.total:g}".strip()]
        if self.total:
            parts[0] += f" ({100.0 * self.done / self.total:.0f} %)"
        parts += [
            f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}" for k, v in info.items()
        ]
        rate = (self.done - self.start) / elapsed if elapsed > 0 else 0.0
        if self.eta and rate > 0:
            parts.append(f"{rate:.3g} {self.unit}/s".strip())
            if prefix != "done":
                parts.append(f"ETA {_duration((self.total - self.done) / rate)}")
        parts.append(f"{_duration(elapsed)} elapsed")
        return f"[{self.label}] {prefix}: " + ", ".join(parts)

    def update(self, done: float, **info) -> None:
        self.done = done
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(done - self.bar.n)
            if info:
                self.bar.set_postfix(info, refresh=False)
            return
        now = time.monotonic()
        since = now - self.last_time
        tenth = self.total and (done - self.last_done) >= 0.1 * self.total
        if since >= MAX_INTERVAL or (since >= self.min_interval and tenth):
            self.last_time, self.last_done = now, done
            write_line(self._line("progress", info))

    def close(self, done: float | None = None, **info) -> None:
        if done is not None:
            self.done = done
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(self.done - self.bar.n)
            if info:
                self.bar.set_postfix(info, refresh=False)
            self.bar.close()
            return
        write_line(self._line("done", info))


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
