"""Progress of a local data stage while its Beam pipeline runs: bytes and files read, documents.

Workers (in this process, or the `--workers N` processes, which inherit the environment) add to
per-process tallies that are written, at most once a second, to a small JSON file each in a folder
named by `LLMPIPE_PROGRESS_DIR`. The process that started the pipeline sums those files: on a
terminal it draws a tqdm bar over the input bytes; otherwise (a log file, CI) it prints one line
every `LLMPIPE_PROGRESS_EVERY` seconds (default 30) with elapsed time, rate and ETA. On a cluster
runner nothing is set and the workers count nothing (the runner's own UI shows progress).
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from typing import Optional, TextIO

ENV = "LLMPIPE_PROGRESS_DIR"
EVERY_ENV = "LLMPIPE_PROGRESS_EVERY"


class _Tally:
    """This process's counts, flushed to `<dir>/<pid>.json` at most once a second."""

    def __init__(self) -> None:
        self.bytes = self.docs = self.files = 0
        self.flushed = 0.0
        self.folder: Optional[str] = None
        self.lock = threading.Lock()

    def add(self, nbytes: int = 0, docs: int = 0, files: int = 0) -> None:
        folder = os.environ.get(ENV)
        if not folder:
            return
        with self.lock:
            if folder != self.folder:  # a new pipeline: counts start from zero
                self.folder, self.bytes, self.docs, self.files = folder, 0, 0, 0
            self.bytes += nbytes
            self.docs += docs
            self.files += files
            now = time.monotonic()
            if files or now - self.flushed >= 1.0:
                self.flushed = now
                self._write(folder)

    def _write(self, folder: str) -> None:
        path = os.path.join(folder, f"{os.getpid()}.json")
        tmp = f"{path}.tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump({"bytes": self.bytes, "docs": self.docs, "files": self.files}, f)
            os.replace(tmp, path)
        except OSError:  # the stage finished and removed the folder: nothing left to report to
            pass


_TALLY = _Tally()


def note(nbytes: int = 0, docs: int = 0, files: int = 0) -> None:
    """Count input bytes read, documents parsed and files finished (a no-op off the local runner)."""
    _TALLY.add(nbytes, docs, files)


class CountingReader:
    """A binary file object that reports the bytes read through it to `note` (the compressed
    bytes, for a compressed file: they are what the input's size counts)."""

    def __init__(self, raw) -> None:
        self.raw = raw

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        note(nbytes=len(data))
        return data

    def readline(self, size: int = -1) -> bytes:
        data = self.raw.readline(size)
        note(nbytes=len(data))
        return data

    def readinto(self, buffer) -> int:
        n = self.raw.readinto(buffer)
        note(nbytes=n or 0)
        return n

    def __getattr__(self, name: str):
        return getattr(self.raw, name)

    def __enter__(self) -> "CountingReader":
        return self

    def __exit__(self, *exc) -> None:
        self.raw.close()


def _duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def summary_line(name: str, done: dict, total_bytes: int, total_files: int, elapsed: float) -> str:
    """`clean: 12.3/45.6 MB (27%), 2/8 files, 3,456 documents (120/s), 1m02s elapsed, ETA 2m45s`."""
    frac = done["bytes"] / total_bytes if total_bytes else 0.0
    eta = elapsed * (1 - frac) / frac if frac > 0 else None
    rate = done["docs"] / elapsed if elapsed > 0 else 0.0
    return (f"{name}: {done['bytes'] / 1e6:.1f}/{total_bytes / 1e6:.1f} MB ({100 * min(frac, 1):.0f}%), "
            f"{done['files']}/{total_files} files, {done['docs']:,} documents ({rate:.0f}/s), "
            f"{_duration(elapsed)} elapsed, ETA {_duration(eta) if eta is not None else '?'}")


def every_seconds() -> float:
    """`LLMPIPE_PROGRESS_EVERY` in seconds (default 30). A value under 0.1 s would flood the log and
    one that is not a number means nothing: both fall back to the default."""
    try:
        value = float(os.environ.get(EVERY_ENV, "30"))
    except ValueError:
        return 30.0
    return value if value >= 0.1 else 30.0


class Reporter:
    """Sums the workers' tallies while a pipeline runs and shows them (see the module docstring)."""

    def __init__(self, name: str, total_bytes: int, total_files: int, stream: Optional[TextIO] = None,
                 every: Optional[float] = None) -> None:
        self.name, self.total_bytes, self.total_files = name, total_bytes, total_files
        self.stream = stream or sys.stderr
        self.every = every if every is not None else every_seconds()
        self.folder = tempfile.mkdtemp(prefix="llmpipe-progress-")
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.previous_env: Optional[str] = None

    def totals(self) -> dict:
        done = {"bytes": 0, "docs": 0, "files": 0}
        for name in os.listdir(self.folder):
            if name.endswith(".json"):
                try:
                    with open(os.path.join(self.folder, name), encoding="utf-8") as f:
                        part = json.load(f)
                except (OSError, ValueError):
                    continue
                for key in done:
                    done[key] += int(part.get(key, 0))
        return done

    def _loop(self) -> None:
        started = time.monotonic()
        bar = None
        if self.stream.isatty():
            from tqdm import tqdm

            bar = tqdm(total=self.total_bytes, unit="B", unit_scale=True, desc=self.name, file=self.stream, leave=False)
        last, printed = started, False
        while not self.stop.wait(0.5 if bar is not None else min(self.every, 1.0)):
            done = self.totals()
            if bar is not None:
                bar.n = min(done["bytes"], self.total_bytes)
                bar.set_postfix_str(f"{done['files']}/{self.total_files} files, {done['docs']:,} docs", refresh=True)
            elif time.monotonic() - last >= self.every:
                last, printed = time.monotonic(), True
                print(summary_line(self.name, done, self.total_bytes, self.total_files, last - started),
                      file=self.stream, flush=True)
        if bar is not None:
            bar.close()
        elif printed:  # a log that had progress lines also gets the last one
            print(summary_line(self.name, self.totals(), self.total_bytes, self.total_files, time.monotonic() - started),
                  file=self.stream, flush=True)

    def __enter__(self) -> "Reporter":
        self.previous_env = os.environ.get(ENV)
        os.environ[ENV] = self.folder
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()
        if self.previous_env is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = self.previous_env
        import shutil

        shutil.rmtree(self.folder, ignore_errors=True)


#: what the stage about to run reads (set by pipelines.stage.begin, read by pipelines.runner)
_expected: dict = {}


def expect(name: str, total_bytes: int, total_files: int) -> None:
    """Record the input of the stage whose pipeline runs next (for the bar's total and the ETA)."""
    _expected.update(name=name, total_bytes=total_bytes, total_files=total_files)


def reporter() -> Reporter:
    """A reporter for the stage announced by `expect` (an unnamed one with no totals otherwise)."""
    info = {"name": "pipeline", "total_bytes": 0, "total_files": 0, **_expected}
    _expected.clear()
    return Reporter(info["name"], info["total_bytes"], info["total_files"])
