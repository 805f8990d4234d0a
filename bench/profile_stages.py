"""Where a data stage's time goes on the local runner: per fused stage, wall time, the parent
process's CPU and each worker process's CPU, and how the parent split each large buffer.

    python bench/profile_stages.py clean bench/data/clean_corpus_48mb /tmp/out --workers 2
    python bench/profile_stages.py dedup bench/data/dedup_corpus_48mb /tmp/out --workers 2

Runs `llmpipe <stage> --input '<corpus>/*.jsonl.gz' --output <out> --force` in this process with
Beam's FnApiRunner instrumented: `FnApiRunner._execute_bundle` is timed per stage (wall, and the
parent's `time.process_time`), the CPU of every descendant process (the `--workers` SDK workers) is
read from /proc before and after each stage, and `ListBuffer.partition` / `GroupingBuffer.partition`
print the bytes each worker is handed when a buffer over 200 KB is split (a plain buffer is split
by the chunks the workers sent, a GroupByKey's output key by key). Linux only (/proc).
Source of the hooks: apache_beam/runners/portability/fn_api_runner/fn_runner.py and execution.py.
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def descendant_cpu() -> dict[str, float]:
    """CPU seconds (user + system) of every live descendant process of this one, by pid."""
    procs = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = open(stat).read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        procs[stat.split("/")[2]] = (fields[1], (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
    mine, grew = {str(os.getpid())}, True
    while grew:
        grew = False
        for pid, (parent, _) in procs.items():
            if parent in mine and pid not in mine:
                mine.add(pid)
                grew = True
    mine.discard(str(os.getpid()))
    return {pid: procs[pid][1] for pid in mine if pid in procs}


def instrument(stats: dict) -> None:
    from apache_beam.runners.portability.fn_api_runner import execution, fn_runner

    run_bundle = fn_runner.FnApiRunner._execute_bundle

    def timed(self, ctx, manager, bundle_input):
        wall, cpu, kids = time.time(), time.process_time(), descendant_cpu()
        result = run_bundle(self, ctx, manager, bundle_input)
        after = descendant_cpu()
        s = stats.setdefault(manager.stage.name, [0.0, 0.0, []])
        s[0] += time.time() - wall
        s[1] += time.process_time() - cpu
        s[2] = [round(after[p] - kids.get(p, 0.0), 2) for p in sorted(after) if after[p] - kids.get(p, 0.0) > 0.005]
        return result

    fn_runner.FnApiRunner._execute_bundle = timed
    for cls in (execution.ListBuffer, execution.GroupingBuffer):
        def hooked(self, n, _partition=cls.partition, _name=cls.__name__):
            parts = _partition(self, n)
            sizes = [sum(len(b) for b in part) for part in parts]
            if sum(sizes) > 200_000:
                print(f"split {_name}: chunks {[len(p) for p in parts]}, bytes {sizes}", flush=True)
            return parts

        cls.partition = hooked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=["clean", "dedup"])
    parser.add_argument("corpus")
    parser.add_argument("out")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--min-wall", type=float, default=0.1, help="list stages of at least this many seconds")
    args = parser.parse_args()

    stats: dict = {}
    instrument(stats)
    from pipelines.cli import main as llmpipe

    cmd = [args.stage, "--input", f"{args.corpus}/*.jsonl.gz", "--output", args.out, "--force"]
    if args.workers > 1:
        cmd += ["--workers", str(args.workers)]
    wall, cpu = time.time(), time.process_time()
    assert llmpipe(cmd) == 0
    wall, cpu = time.time() - wall, time.process_time() - cpu
    print(f"total: wall {wall:.1f} s, parent CPU {cpu:.1f} s, {len(stats)} fused stages, "
          f"stage walls summed {sum(s[0] for s in stats.values()):.1f} s")
    for name, (w, c, kids) in sorted(stats.items(), key=lambda kv: -kv[1][0]):
        if w >= args.min_wall:
            print(f"{w:6.2f} s wall  parent {c:5.2f} s  workers {kids}  {name[:140]}")


if __name__ == "__main__":
    main()
