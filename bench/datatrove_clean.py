"""datatrove's Gopher + C4 + FineWeb filters on the benchmark corpus (run in the bench venv).

Usage: python bench/datatrove_clean.py INPUT_DIR OUTPUT_DIR WORKERS
Prints one JSON line: documents kept and wall seconds.
datatrove's stock JsonlReader loses the rest of a shard after invalid UTF-8 and crashes on a line
that is not an object, so this reader skips bad lines (and counts them) to get a fair timing.
"""
import gzip
import json
import os
import sys
import time

from datatrove.data import Document
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters import C4QualityFilter, FineWebQualityFilter, GopherQualityFilter, GopherRepetitionFilter
from datatrove.pipeline.writers import JsonlWriter


class SkippingJsonlReader(PipelineStep):
    name = "skipping jsonl reader"
    type = "READER"

    def __init__(self, folder: str):
        super().__init__()
        self.files = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".jsonl.gz"))

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        for path in self.files[rank::world_size]:
            with gzip.open(path, "rb") as f:
                for number, raw in enumerate(f):
                    try:
                        obj = json.loads(raw.decode("utf-8"))
                        text = obj["text"]
                        if not isinstance(text, str) or not text.strip():
                            raise ValueError("no text")
                    except Exception:
                        self.stat_update("bad_line")
                        continue
                    self.stat_update("read")
                    yield Document(text=text, id=str(obj.get("id", f"{path}:{number}")))


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
    kept = 0
    kept_dir = os.path.join(out, "kept")
    for name in os.listdir(kept_dir):
        opener = gzip.open if name.endswith(".gz") else open
        with opener(os.path.join(kept_dir, name), "rb") as f:
            kept += sum(1 for _ in f)
    print(json.dumps({"kept": kept, "wall_s": wall}))


if __name__ == "__main__":
    main()
