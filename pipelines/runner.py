"""Which Beam runner a data stage runs on, and the pass-through options it is given.

Two promises:
- The local runner is chosen explicitly. Beam's `DirectRunner` (2.77) first tries the Prism
  runner, which downloads a binary, and falls back to its in-process engines when that fails, so
  the same command would run on a different engine depending on whether the network is up.
  `LocalRunner` is the DirectRunner's own switch between its in-process engines (the FnApiRunner,
  or the BundleBasedDirectRunner where a pipeline needs it) with the Prism attempt left out.
  `--runner=PrismRunner` still asks for Prism explicitly.
- Pipeline options are checked before any output is touched: an option no Beam options class
  knows (a typo such as `--runer=DataflowRunner`) is a one-line error, where Beam would log it,
  drop it and run the job on the local runner.
"""
from __future__ import annotations

import contextlib
import difflib
import logging
import os
import threading
from collections.abc import Iterator
from typing import Optional

from llmdata.errors import LlmpipeError

#: names that mean "run here, in this process (or --workers processes)"
LOCAL_RUNNER_NAMES = ("DirectRunner", "direct", "LocalRunner")


class BeamOptionsError(LlmpipeError, ValueError):
    """A pass-through Beam option that no runner would read, or a runner Beam does not know."""


def runner_name(beam_args: list[str]) -> str:
    """The `--runner` given (the last one wins, as in argparse), or "DirectRunner"."""
    name = "DirectRunner"
    for i, arg in enumerate(beam_args):
        if arg.startswith("--runner="):
            name = arg.split("=", 1)[1]
        elif arg == "--runner" and i + 1 < len(beam_args):
            name = beam_args[i + 1]
    return name


def check_options(beam_args: list[str]) -> None:
    """Refuse options that no Beam `PipelineOptions` class defines, naming the closest known one.

    The runner's module is imported first, so options that only a runner defines (Flink's,
    Spark's, Dataflow's) are known. Raises `BeamOptionsError`.
    """
    from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser
    from apache_beam.runners.runner import create_runner

    name = runner_name(beam_args)
    if name not in LOCAL_RUNNER_NAMES:
        try:
            create_runner(name)  # imports the runner's module and, with it, its options classes
        except Exception as err:  # an unknown name, a dotted path to nothing, a missing extra
            first = (str(err).splitlines() or [type(err).__name__])[0]
            raise BeamOptionsError(f"Beam runner {name!r} is not available: {first}") from None

    class Parser(_BeamArgumentParser):
        def error(self, message: str):  # argparse would print Beam's whole usage and exit
            raise BeamOptionsError(f"Beam pipeline options: {message}; nothing was run")

    parser = Parser(allow_abbrev=False)
    seen: dict[str, type] = {}
    todo = list(PipelineOptions.__subclasses__())
    while todo:  # every options class, as PipelineOptions.get_all_options collects them
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        seen.setdefault(str(cls), cls)
    for cls in seen.values():
        cls._add_argparse_args(parser)  # noqa: SLF001 - the parser Beam itself builds
    _, unknown = parser.parse_known_args(beam_args)
    flags = [a for a in unknown if a.startswith("-")]
    if flags:
        bad = flags[0].split("=", 1)[0]
        known = [s for action in parser._actions for s in action.option_strings]  # noqa: SLF001
        close = difflib.get_close_matches(bad, known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise BeamOptionsError(f"unknown Beam pipeline option {bad}{hint}; nothing was run")
    stray = [a for a in unknown if not a.startswith("-")]
    if stray:
        raise BeamOptionsError(f"Beam pipeline option value {stray[0]!r} follows no option; nothing was run")


def resolve_beam_args(beam_args: list[str], workers: Optional[int]) -> list[str]:
    """The options a stage's pipeline gets: checked, with the local runner made explicit and
    `--workers N` turned into N DirectRunner processes (ignored for another runner)."""
    check_options(beam_args)
    args = list(beam_args)
    if not any(a == "--runner" or a.startswith("--runner=") for a in args):
        args.insert(0, "--runner=DirectRunner")
    if workers and runner_name(args) in LOCAL_RUNNER_NAMES:
        args = [a for a in args if not a.startswith(("--direct_num_workers", "--direct_running_mode"))]
        args += [f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"]
    return args


def local_runner():
    """The DirectRunner's in-process engines, without its attempt to download and start Prism.

    Source: `apache_beam/runners/direct/direct_runner.py` (`SwitchingDirectRunner.run_pipeline`
    tries Prism unless the runner is interactive; everything else is the same choice between
    the FnApiRunner and the BundleBasedDirectRunner).
    """
    from apache_beam.runners.direct.direct_runner import SwitchingDirectRunner

    class LocalRunner(SwitchingDirectRunner):
        _is_interactive = True  # the one switch that skips Prism; nothing else reads it

    return LocalRunner()


@contextlib.contextmanager
def parallel_worker_shutdown() -> Iterator[None]:
    """While the local runner runs: its `--workers` processes are told to stop all at once and
    then awaited, where Beam stops them one after the other, each waited for until its process
    has ended (with Beam's own worker main about half a second each, 2 workers a second of the
    run in series; see `quick_worker_exit`).

    Source: `apache_beam/runners/portability/fn_api_runner/worker_handlers.py`
    (`WorkerHandlerManager.close_all` closes each handler in turn; a handler's `close` closes its
    control and data connections and joins the thread that waits for its process). The handlers
    are closed by the same `close`, each in a thread of its own; Beam's `close_all` then finds
    none left and closes the gRPC server as before. Where a Beam release lacks what this relies on
    (the method, the handler cache), Beam's own close_all runs: slower, never broken.
    """
    from apache_beam.runners.portability.fn_api_runner import worker_handlers

    manager = worker_handlers.WorkerHandlerManager
    serial_close_all = manager.__dict__.get("close_all")
    if not callable(serial_close_all):  # another Beam: its own shutdown, only slower
        yield
        return

    def close_all(self) -> None:
        cached = getattr(self, "_cached_handlers", None)
        if not isinstance(cached, dict):  # another Beam's handler bookkeeping: its own close_all
            return serial_close_all(self)
        handlers = {h for handlers in cached.values() for h in handlers}
        threads = [threading.Thread(target=_close_handler, args=(h,), name="close_worker") for h in handlers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        cached.clear()
        serial_close_all(self)

    manager.close_all = close_all
    try:
        yield
    finally:
        manager.close_all = serial_close_all


BEAM_WORKER_MODULE = "apache_beam.runners.worker.sdk_worker_main"
WORKER_MODULE = "pipelines.local_worker"


@contextlib.contextmanager
def quick_worker_exit() -> Iterator[None]:
    """While the local runner runs: its `--workers` processes start `pipelines.local_worker`
    (Beam's SDK harness, then an exit without the interpreter's teardown) instead of Beam's
    `sdk_worker_main`, whose teardown costs each worker about half a second of CPU after its last
    bundle while the run waits for it.

    Source: `apache_beam/runners/portability/fn_api_runner/fn_runner.py` (`run_pipeline` builds
    the multi_processing environment from the command line ``<python> -m
    apache_beam.runners.worker.sdk_worker_main`` with `SubprocessSDKEnvironment.from_command_string`;
    only the module name in that command line is replaced). Where a Beam release builds the
    environment otherwise, nothing is replaced and Beam's worker main runs. The workers are told
    this process's id (`pipelines.local_worker.RUNNER_PID_ENV`) and exit once it is gone.
    """
    from apache_beam.transforms import environments

    env = environments.SubprocessSDKEnvironment
    beam_from_command_string = env.__dict__.get("from_command_string")
    if not isinstance(beam_from_command_string, classmethod):  # another Beam: its own worker main
        yield
        return

    def from_command_string(cls, command_string: str):
        return beam_from_command_string.__func__(cls, command_string.replace(f"-m {BEAM_WORKER_MODULE}",
                                                                             f"-m {WORKER_MODULE}"))

    from pipelines.local_worker import RUNNER_PID_ENV

    env.from_command_string = classmethod(from_command_string)
    had_pid = os.environ.get(RUNNER_PID_ENV)
    os.environ[RUNNER_PID_ENV] = str(os.getpid())  # the workers inherit it and exit once we are gone
    try:
        yield
    finally:
        env.from_command_string = beam_from_command_string
        if had_pid is None:
            os.environ.pop(RUNNER_PID_ENV, None)
        else:
            os.environ[RUNNER_PID_ENV] = had_pid


def _close_handler(handler) -> None:
    try:
        handler.close()
    except Exception:  # logged and passed over, as Beam's close_all does
        logging.getLogger(__name__).exception("Error closing worker_handler %s", handler)


def beam_pipeline(beam_args: list[str]):
    """A Beam pipeline for checked pass-through options (`resolve_beam_args`): the local
    runner, showing progress, when the options name none or a local one; else the runner they name."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    args = beam_args or ["--runner=DirectRunner"]
    options = PipelineOptions(args)
    name = runner_name(args)
    if name not in LOCAL_RUNNER_NAMES:

        class SubmittingPipeline(beam.Pipeline):
            """A job the runner cannot start (options it validates, a missing extra, a job server it
            cannot reach) is one line; what happens once the job runs is the runner's to report."""

            def run(self, test_runner_api="AUTO"):
                try:
                    return super().run(test_runner_api)
                except Exception as err:  # noqa: BLE001 - turned into one line that names the runner
                    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()] or [type(err).__name__]
                    raise BeamOptionsError(f"Beam runner {name!r} could not start the job: {lines[0]}"
                                           + (f" ({lines[1]})" if len(lines) > 1 else "")) from err

        return SubmittingPipeline(options=options)

    class ReportingPipeline(beam.Pipeline):
        """Shows the workers' progress (pipelines/progress.py) while the local runner runs it.

        Beam's "AUTO" skips its test round trip through the runner API (the whole graph to protos
        and back, then to protos again to run it: about a second of a clean run) for the
        DirectRunner in batch, recognized by its class name `SwitchingDirectRunner`; `LocalRunner`
        is that runner under another name, so the same choice is made here
        (`apache_beam/pipeline.py`, `Pipeline._run_internal`).
        """

        def run(self, test_runner_api="AUTO"):
            from apache_beam.options.pipeline_options import StandardOptions
            from pipelines import progress

            if test_runner_api == "AUTO":
                test_runner_api = self._options.view_as(StandardOptions).streaming
            with progress.reporter(), quick_worker_exit(), parallel_worker_shutdown():
                return super().run(test_runner_api)

    return ReportingPipeline(runner=local_runner(), options=options)
