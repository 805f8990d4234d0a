"""File access through Beam's FileSystems, so every stage works on local paths, gs:// and s3://.

Beam is imported on first use, not with this module: the training stages and the config loader
read and write manifests through here without paying for (or depending on) Beam's import.
"""
from __future__ import annotations

import json
import os
import uuid
from typing import Any


class _Lazy:
    """`FileSystems` and `CompressionTypes`, imported from Beam when first touched."""

    def __getattr__(self, name: str) -> Any:
        from apache_beam.io.filesystem import CompressionTypes as compression
        from apache_beam.io.filesystems import FileSystems as filesystems

        value = {"FileSystems": filesystems, "CompressionTypes": compression}[name]
        setattr(self, name, value)
        return value


_beam = _Lazy()


def join(base: str, *parts: str) -> str:
    if is_local(base):
        return os.path.join(base, *parts)
    return _beam.FileSystems.join(base, *parts)


def is_local(path: str) -> bool:
    return "://" not in path


def match(pattern: str) -> list[tuple[str, int, float]]:
    """Files matching a glob or path: (path, size, last-modified seconds), sorted by path."""
    try:
        result = _beam.FileSystems.match([pattern])[0]
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
    return [(m.path, m.size_in_bytes, 0.0) for r in _beam.FileSystems.match(paths) for m in r.metadata_list]


def exists(path: str) -> bool:
    if is_local(path):
        return os.path.exists(path)
    return _beam.FileSystems.exists(path)


def makedirs(path: str) -> None:
    if is_local(path):
        os.makedirs(path, exist_ok=True)


def remove_tree(path: str) -> None:
    """Remove a stage folder before a rerun, so no stale shard of an earlier run survives."""
    if is_local(path):
        import shutil

        shutil.rmtree(path, ignore_errors=True)
    elif _beam.FileSystems.exists(path):
        _beam.FileSystems.delete([path])


def replace_tree(src: str, dest: str) -> None:
    """Make folder `src` the folder `dest`, dropping what `dest` held.

    Local folders: two renames (`dest` is moved aside first, then removed), so `dest` is never
    seen half-written. Object stores have no folders to rename: `dest`'s files are deleted, then
    `src`'s files renamed under `dest` one by one, the manifest last.
    """
    if is_local(dest):
        import shutil

        old = f"{dest}.old-{uuid.uuid4().hex[:8]}"
        if os.path.exists(dest):
            os.replace(dest, old)
        os.replace(src, dest)
        shutil.rmtree(old, ignore_errors=True)
        return
    remove_tree(dest)
    files = sorted((p for p, _, _ in match(join(src, "**"))), key=lambda p: p.endswith("manifest.json"))
    prefix = src.rstrip("/") + "/"
    _beam.FileSystems.rename(files, [join(dest, p[len(prefix):]) for p in files])
    remove_tree(src)


def read_bytes(path: str) -> bytes:
    if is_local(path):
        with open(path, "rb") as f:
            return f.read()
    with _beam.FileSystems.open(path, compression_type=_beam.CompressionTypes.UNCOMPRESSED) as f:
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
    with _beam.FileSystems.create(tmp, compression_type=_beam.CompressionTypes.UNCOMPRESSED) as f:
        f.write(data)
    if _beam.FileSystems.exists(path):
        _beam.FileSystems.delete([path])
    _beam.FileSystems.rename([tmp], [path])


def write_text(path: str, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json(path: str, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def iter_json_lines(path: str):
    """Records of one (possibly gzipped) jsonl file, e.g. a stage's output shard."""
    with _beam.FileSystems.open(path, compression_type=_beam.CompressionTypes.AUTO) as f:
        for line in f.read().splitlines():
            if line.strip():
                yield json.loads(line)


def read_lines(pattern: str) -> list[str]:
    """All lines of the (small) files matching a pattern, e.g. a stage's count shards."""
    lines: list[str] = []
    for path, _, _ in match(pattern):
        with _beam.FileSystems.open(path) as f:
            lines.extend(line.decode("utf-8") for line in f.read().splitlines() if line.strip())
    return lines
