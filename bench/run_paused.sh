#!/usr/bin/env bash
# Run bench/rerank_latency.py (or $BENCH_SCRIPT, e.g. bench/load.py) with the CPU-heavy jobs listed in /work/scratch/heavy.pids (another engineer's, on this
# shared machine) paused only while the timed searches run (the bench creates a marker file for that part), for at
# most PAUSE_MAX_S seconds; they are always resumed (trap), also when the bench fails or is interrupted.
#   bench/run_paused.sh [bench args...]
set -euo pipefail
cd "$(dirname "$0")/.."
pids_file=${HEAVY_PIDS:-/work/scratch/heavy.pids}
max_s=${PAUSE_MAX_S:-280}
marker=$(mktemp -u /tmp/distilrank-bench-measuring.XXXXXX)
paused=()
resume() { for p in "${paused[@]}"; do kill -CONT "$p" 2>/dev/null || true; done; paused=(); }
trap resume EXIT INT TERM
.venv/bin/python "${BENCH_SCRIPT:-bench/rerank_latency.py}" --measure-marker "$marker" "$@" &
bench=$!
while kill -0 "$bench" 2>/dev/null && [ ! -e "$marker" ]; do sleep 1; done
if [ -e "$marker" ] && [ -s "$pids_file" ]; then
  for p in $(cat "$pids_file"); do kill -STOP "$p" 2>/dev/null && paused+=("$p"); done
  echo "[bench] paused ${paused[*]:-nothing} for the timed searches (at most ${max_s}s)" >&2
  start=$(date +%s)
  while kill -0 "$bench" 2>/dev/null && [ -e "$marker" ] && [ $(( $(date +%s) - start )) -lt "$max_s" ]; do sleep 1; done
  resume
  echo "[bench] resumed after $(( $(date +%s) - start ))s" >&2
fi
wait "$bench"
