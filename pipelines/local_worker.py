"""A worker process of the local runner (`--workers N`): Beam's SDK harness, then an exit that
skips the interpreter's teardown.

Beam starts each worker as ``python -m apache_beam.runners.worker.sdk_worker_main`` and waits for
the process to end after the last bundle. Once the harness returns, every bundle has been answered
and its log channel closed; what is left is freeing the objects of a process that imported Beam,
pandas and the stage's modules, about half a second of CPU per worker (measured: a process that
imports sdk_worker_main takes 1.46 s to run and end, 0.85 s with os._exit), during which the
parent waits. `pipelines.runner.quick_worker_exit` starts this module instead.

Source: `apache_beam/runners/worker/sdk_worker_main.py` (`main`), started by
`apache_beam/runners/portability/fn_api_runner/fn_runner.py` (`multi_processing`).
"""
from __future__ import annotations

import logging
import os
import sys
import threading
import time

#: the runner's process id, set by `pipelines.runner.quick_worker_exit` for its workers
RUNNER_PID_ENV = "LLMPIPE_RUNNER_PID"


def exit_when_gone(pid: int, interval_s: float = 1.0) -> threading.Thread:
    """Watch process `pid` from a daemon thread and end this process (status 1) once it is gone.

    A runner killed by a signal sent to it alone (SIGTERM from a scheduler) leaves Beam's worker
    processes running when they are still starting up: they wait for a control channel that will
    never answer (seen with Beam's own sdk_worker_main too). Polls every `interval_s` seconds."""
    def watch() -> None:
        while True:
            time.sleep(interval_s)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:  # alive, another user's (the pid was reused): stop watching
                return

    thread = threading.Thread(target=watch, name="watch_runner", daemon=True)
    thread.start()
    return thread


def main() -> None:
    """Run Beam's SDK harness as its own module would; exit at once when it returns normally (an
    exception propagates, and the process ends with its traceback and a non-zero status), or
    when the runner that started it is gone."""
    from apache_beam.runners.worker import sdk_worker_main

    runner = os.environ.get(RUNNER_PID_ENV, "")
    if runner.isdigit():
        exit_when_gone(int(runner))
    sdk_worker_main.main(sys.argv)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
