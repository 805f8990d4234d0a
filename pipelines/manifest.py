"""The stage contract: fingerprints, manifests written last and atomically, skipping, accounting.

A stage is finished when its folder holds a `manifest.json` with status "complete" whose
fingerprint equals the fingerprint of the stage's resolved config and inputs. Anything else
(no manifest, a failed one, a changed config or input) means the stage runs again.
"""
from __future__ import annotations

import hashlib
import json
import platform
import time
from importlib import metadata
from typing import Any, Optional

from llmdata.errors import LlmpipeError
from pipelines import fs

MANIFEST = "manifest.json"
#: beside a training stage's folder: its last finished run, while a new run has not finished
PREVIOUS = ".previous"
_PACKAGES = ("llmpipe", "apache-beam", "pandas", "scipy", "numpy", "nltk", "datasketch", "pyarrow", "torch")


class AccountingError(LlmpipeError, RuntimeError):
    """A data stage's counts do not add up: some record would be lost without a trace."""


def _digest(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


def input_fingerprint(pattern: str) -> dict:
    """What the input is, cheaply: each matched file's path, size and modification time.

    An input that is a finished stage's folder is fingerprinted by that stage's manifest,
    so a rerun of the upstream stage invalidates everything downstream.
    """
    upstream = fs.join(pattern, MANIFEST) if not any(c in pattern for c in "*?[") else None
    if upstream and fs.exists(upstream):
        return {"pattern": pattern, "upstream_manifest": _digest(fs.read_json(upstream))}
    files = fs.match(pattern)
    return {
        "pattern": pattern,
        "files": len(files),
        "bytes": sum(size for _, size, _ in files),
        "digest": _digest(files),
    }


def stage_fingerprint(stage: str, config: dict, inputs: dict) -> str:
    return _digest({"stage": stage, "config": config, "inputs": inputs})


def read_manifest(folder: str) -> Optional[dict]:
    path = fs.join(folder, MANIFEST)
    if not fs.exists(path):
        return None
    try:
        return fs.read_json(path)
    except (ValueError, OSError):
        return None


def is_complete(folder: str, fingerprint: str) -> bool:
    manifest = read_manifest(folder)
    return bool(manifest and manifest.get("status") == "complete" and manifest.get("fingerprint") == fingerprint)


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def check_accounting(counts: dict) -> None:
    """input == the sum of every outcome (kept, rejected, removed, quarantined, dropped...), and
    each outcome's total equals the sum of its reasons."""
    totals = {}
    for name, part in counts.items():
        if name == "input":
            continue
        if isinstance(part, dict):
            total = part.get("total", 0)
            reasons = part.get("by_reason")
            if reasons is not None and sum(reasons.values()) != total:
                raise AccountingError(f"{name}: total {total} != sum of reasons {sum(reasons.values())}")
            totals[name] = total
        else:
            totals[name] = int(part)
    accounted = sum(totals.values())
    if counts.get("input") != accounted:
        detail = " + ".join(f"{k} {v}" for k, v in totals.items())
        raise AccountingError(f"input {counts.get('input')} != {detail} = {accounted}")


def write_manifest(
    folder: str,
    stage: str,
    fingerprint: str,
    config: dict,
    inputs: dict,
    counts: dict,
    timings: dict,
    outputs: dict,
    extra: Optional[dict] = None,
) -> dict:
    """Check the accounting, then write the manifest last and atomically."""
    if "input" in counts:
        check_accounting(counts)
    manifest = {
        "stage": stage,
        "status": "complete",
        "fingerprint": fingerprint,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": config,
        "inputs": inputs,
        "counts": counts,
        "timings": timings,
        "outputs": outputs,
        "versions": package_versions(),
        **(extra or {}),
    }
    fs.write_json(fs.join(folder, MANIFEST), manifest)
    fs.remove_tree(folder.rstrip("/") + PREVIOUS)  # the finished run this one replaces
    return manifest
