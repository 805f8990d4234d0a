"""datatrove's Gopher + C4 + FineWeb filters on the benchmark corpus (run in the bench venv).

Usage: python bench/datatrove_clean.py INPUT_DIR OUTPUT_DIR WORKERS
Prints one JSON line: documents kept and wall seconds.
The reader skips bad lines (see datatrove_common.py) to get a fair timing.
"""
import json
import os
import sys
import time

from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.filters import C4QualityFilter, FineWebQualityFilter, GopherQualityFilter, GopherRepetitionFilter
from datatrove.pipeline.writers import JsonlWriter
from datatrove_common import SkippingJsonlReader, count_lines


def main() -> None:
    src, out, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
    pipeline = [
        SkippingJsonlReader(src),
        GopherRepetitionFilter(),
        GopherQualityFilter(),
        C4QualityFilter(filter_no_terminal_punct=False),
        FineWebQualityFilter(),
        JsonlWriter(os.path.join(out, "kept")),
    ]
    started = time.time()
    executor = LocalPipelineExecutor(pipeline, tasks=workers, workers=workers, logging_dir=os.path.join(out, "logs"), skip_completed=False)
    executor.run()
    wall = time.time() - started
    print(json.dumps({"kept": count_lines(os.path.join(out, "kept")), "wall_s": wall}))


if __name__ == "__main__":
    main()
