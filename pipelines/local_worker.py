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


def main() -> None:
    """Run Beam's SDK harness as its own module would; exit at once when it returns normally (an
    exception propagates, and the process ends with its traceback and a non-zero status)."""
    from apache_beam.runners.worker import sdk_worker_main

    sdk_worker_main.main(sys.argv)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
