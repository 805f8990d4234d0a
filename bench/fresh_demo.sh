#!/usr/bin/env bash
# The demo as a new user runs it, timed: a fresh `git clone` of this repository at REV into DIR,
# then `make pipeline` with every output line stamped with the seconds since start, then the md5
# of every stage's weights (bench/RESULTS.md compares runs by them).
#   bash bench/fresh_demo.sh DIR [REV]      (REV: default HEAD; the log is DIR.log)
set -euo pipefail
dir=${1:?usage: bash bench/fresh_demo.sh DIR [REV]}
rev=${2:-HEAD}
repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
rm -rf "$dir"
git clone -q "$repo" "$dir"
git -C "$dir" checkout -q "$rev"
start=$(date +%s)
(cd "$dir" && make pipeline 2>&1) | while IFS= read -r line; do
  printf '%6ds %s\n' $(( $(date +%s) - start )) "$line"
done > "$dir.log"
echo "wall $(( $(date +%s) - start )) s (commit $(git -C "$dir" rev-parse --short HEAD))" | tee -a "$dir.log"
(cd "$dir/runs/demo" && md5sum */final/model.safetensors 07-lora/adapter/adapter_model.safetensors) | tee -a "$dir.log"
