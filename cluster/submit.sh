#!/usr/bin/env bash
# Submit an optimization (a run config) or a sweep (a sweep file: it has `runs:` or `grid:`) to a
# running Ray cluster as a job, from the repository root:
#   RAY_ADDRESS=http://HEAD:8265 cluster/submit.sh raygrad/configs/objectcount_local.yaml
#   RAY_ADDRESS=http://HEAD:8265 cluster/submit.sh nightly-sweep.yaml
# The working directory (this repository) is uploaded, so the job imports this raygrad;
# cluster/runtime_env.yaml installs its dependencies on the cluster's nodes.
set -euo pipefail
config=${1:?usage: cluster/submit.sh CONFIG [ray job submit options...]}
shift
export RAY_AUTH_MODE=${RAY_AUTH_MODE:-token}  # Ray 2.60 `ray start --head` clusters use token auth
cd "$(dirname "$0")/.."
command=optimize
if grep -qE '^(runs|grid):' "$config"; then command=sweep; fi
exec ray job submit --working-dir . --runtime-env cluster/runtime_env.yaml "$@" -- \
  python -m raygrad "$command" "$config"
