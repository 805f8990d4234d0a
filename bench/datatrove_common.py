"""Shared by the datatrove benchmark scripts (run in the bench venv, never imported by llmpipe)."""
import gzip
import json
import os

from datatrove.data import Document
from datatrove.pipeline.base import PipelineStep


class SkippingJsonlReader(PipelineStep):
    """datatrove's stock JsonlReader loses the rest of a shard after invalid UTF-8 and crashes on
    a line that is not an object; this reader skips bad lines (and counts them) so the timing is
    fair. Files are split among ranks in a fixed order, so two runs read the same documents."""

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
                        text.encode("utf-8")  # a lone surrogate (JSON "\ud83d") crashes spaCy; llmpipe quarantines it
                    except Exception:
                        self.stat_update("bad_line")
                        continue
                    self.stat_update("read")
                    yield Document(text=text, id=str(obj.get("id", f"{path}:{number}")))


def count_lines(folder: str) -> int:
    total = 0
    for name in os.listdir(folder):
        opener = gzip.open if name.endswith(".gz") else open
        with opener(os.path.join(folder, name), "rb") as f:
            total += sum(1 for _ in f)
    return total
