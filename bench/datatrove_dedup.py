"""datatrove's 4-stage MinHash dedup with its default MinhashConfig (5-grams, 14 bands x 8 rows).

Usage: python bench/datatrove_dedup.py INPUT_DIR OUTPUT_DIR WORKERS
Prints one JSON line: wall seconds of each stage and in all, and the ids it removed.
"""
import gzip
import json
import os
import sys
import time

from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup import MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter, MinhashDedupSignature
from datatrove.pipeline.dedup.minhash import MinhashConfig
from datatrove.pipeline.writers import JsonlWriter
from datatrove_common import SkippingJsonlReader


def main() -> None:
    src, out, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
    config = MinhashConfig()
    logs = os.path.join(out, "logs")
    stages = [
        ("signatures", [SkippingJsonlReader(src), MinhashDedupSignature(output_folder=f"{out}/signatures", config=config)], workers),
        ("buckets", [MinhashDedupBuckets(input_folder=f"{out}/signatures", output_folder=f"{out}/buckets", config=config)], config.num_buckets),
        ("cluster", [MinhashDedupCluster(input_folder=f"{out}/buckets", output_folder=f"{out}/remove_ids", config=config)], 1),
        ("filter", [SkippingJsonlReader(src), MinhashDedupFilter(input_folder=f"{out}/remove_ids", exclusion_writer=JsonlWriter(f"{out}/removed")),
                    JsonlWriter(f"{out}/kept")], workers),
    ]
    timings = {}
    started = time.time()
    for name, pipeline, tasks in stages:
        t = time.time()
        LocalPipelineExecutor(pipeline, tasks=tasks, workers=min(workers, tasks), logging_dir=f"{logs}/{name}", skip_completed=False).run()
        timings[name] = time.time() - t
    wall = time.time() - started
    removed = []
    for name in sorted(os.listdir(f"{out}/removed")):
        with gzip.open(os.path.join(out, "removed", name), "rt") as f:
            removed.extend(json.loads(line)["id"] for line in f)
    print(json.dumps({"wall_s": wall, "stages_s": timings, "removed": removed}))


if __name__ == "__main__":
    main()
