"""File access through Beam's FileSystems, so every stage works on local paths, gs:// and s3://."""
from __future__ import annotations

import json
import os
import uuid
from typing import Any

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems


def join(base: str, *parts: str) -> str:
    return FileSystems.join(base, *parts)


def is_local(path: str) -> bool:
    return "://" not in path


def match(pattern: str) -> list[tuple[str, int, float]]:
    """Files matching a glob or path: (path, size, last-modified seconds), sorted by path."""
    try:
        result = FileSystems.match([pattern])[0]
    except Exception:  # Beam raises BeamIOError for a pattern with no match on some systems
        return []
    files = [
        (m.path, m.size_in_bytes, float(getattr(m, "last_updated_in_seconds", 0.0) or 0.0))
        for m in result.metadata_list
    ]
    if is_local(pattern):
        files = [f for f in files if os.path.isfile(f[0])]
    return sorted(files)


def match_many(paths: list[str]) -> list[tuple[str, int, float]]:
    """Metadata of known files (no glob), one listing call."""
    if not paths:
        return []
    return [(m.path, m.size_in_bytes, 0.0) for r in FileSystems.match(paths) for m in r.metadata_list]


def exists(path: str) -> bool:
    return FileSystems.exists(path)


def makedirs(path: str) -> None:
    if is_local(path):
        os.makedirs(path, exist_ok=True)


def remove_tree(path: str) -> None:
    """Remove a stage folder before a rerun, so no stale shard of an earlier run survives."""
    if is_local(path):
        import shutil

        shutil.rmtree(path, ignore_errors=True)
    elif FileSystems.exists(path):
        FileSystems.delete([path])


def read_bytes(path: str) -> bytes:
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        return f.read()


def read_text(path: str) -> str:
    return read_bytes(path).decode("utf-8")


def read_json(path: str) -> Any:
    return json.loads(read_text(path))


def write_bytes_atomic(path: str, data: bytes) -> None:
    """Write to a temporary name, then rename: a reader never sees half a file."""
    if is_local(path):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    with FileSystems.create(tmp, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        f.write(data)
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([tmp], [path])


def write_text(path: str, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json(path: str, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def iter_json_lines(path: str):
    """Records of one (possibly gzipped) jsonl file, e.g. a stage's output shard."""
    with FileSystems.open(path, compression_type=CompressionTypes.AUTO) as f:
        for line in f.read().splitlines():
            if line.strip():
                yield json.loads(line)


def read_lines(pattern: str) -> list[str]:
    """All lines of the (small) files matching a pattern, e.g. a stage's count shards."""
    lines: list[str] = []
    for path, _, _ in match(pattern):
        with FileSystems.open(path) as f:
            lines.extend(line.decode("utf-8") for line in f.read().splitlines() if line.strip())
    return lines
