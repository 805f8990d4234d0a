"""Small measurements quoted in bench/RESULTS.md and the docs, each reproducible by one command.

    python bench/probes.py truncated-gzip          # Beam's gzip reader vs Python's on a cut file
    python bench/probes.py pretokenize --mb 12     # Python `regex` vs HF's Rust splitter, MB/s
    python bench/probes.py workers --input GLOB    # a stage in-process vs 2 worker processes: wall, CPU
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def truncated_gzip() -> None:
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    data = b'{"text": "line one is fine"}\n{"text": "line two is fine"}\n' * 50
    blob = gzip.compress(data)
    path = os.path.join(tempfile.mkdtemp(), "cut.jsonl.gz")
    with open(path, "wb") as f:
        f.write(blob[: len(blob) // 2])
    with FileSystems.open(path, compression_type=CompressionTypes.AUTO) as f:
        beam_bytes = len(f.read())
    try:
        with gzip.open(path) as f:
            python = f"{len(f.read())} bytes, no error"
    except EOFError as err:
        python = f"EOFError: {err}"
    print(f"original {len(data)} bytes, cut file {len(blob) // 2} of {len(blob)} compressed bytes")
    print(f"Beam FileSystems (AUTO): {beam_bytes} bytes, no error")
    print(f"Python gzip: {python}")


def pretokenize(mb: float) -> None:
    from collections import Counter

    import regex
    from tokenizers import Regex, pre_tokenizers

    from llmdata.bpe import PATTERNS
    from llmdata.sample_data import good_documents

    base = [d.text for d in good_documents()]
    texts, size = [], 0
    while size < mb * 1e6:
        texts.extend(base)
        size += sum(len(t) for t in base)
    pattern = regex.compile(PATTERNS["gpt2"])
    started = time.time()
    ours = Counter()
    for t in texts:
        ours.update(pattern.findall(t))
    regex_s = time.time() - started
    split = pre_tokenizers.Split(Regex(PATTERNS["gpt2"]), behavior="isolated")
    started = time.time()
    theirs = Counter()
    for t in texts:
        theirs.update(s for s, _ in split.pre_tokenize_str(t))
    hf_s = time.time() - started
    mb = size / 1e6
    print(f"{mb:.1f} MB, one thread: Python regex {regex_s:.2f} s ({mb / regex_s:.1f} MB/s); "
          f"HF Split from Python {hf_s:.2f} s ({mb / hf_s:.1f} MB/s); same counts: {ours == theirs}")


def workers(pattern: str, stage: str) -> None:
    for n in (1, 2):
        out = tempfile.mkdtemp()
        cmd = [sys.executable, "-m", "pipelines.cli", stage, "--input", pattern, "--output", out, "--force"]
        if n > 1:
            cmd += ["--workers", str(n)]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.time()
        subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True)
        wall = time.time() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        counts = json.loads(Path(out, "manifest.json").read_text())["counts"]
        print(f"{stage} with {n} worker process(es): wall {wall:.1f} s, CPU {cpu:.1f} s ({100 * cpu / wall:.0f}%), "
              f"input {counts['input']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="probe", required=True)
    sub.add_parser("truncated-gzip")
    p = sub.add_parser("pretokenize")
    p.add_argument("--mb", type=float, default=12.0)
    p = sub.add_parser("workers")
    p.add_argument("--input", required=True)
    p.add_argument("--stage", default="clean", choices=["clean", "dedup", "tokenizer"])
    args = parser.parse_args()
    if args.probe == "truncated-gzip":
        truncated_gzip()
    elif args.probe == "pretokenize":
        pretokenize(args.mb)
    else:
        workers(args.input, args.stage)


if __name__ == "__main__":
    main()
