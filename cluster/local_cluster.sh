#!/usr/bin/env bash
# A multi-node Ray cluster on this one machine: a head node and N worker nodes (separate raylets),
# for trying `raygrad optimize` and `ray job submit` without a cloud.
#   cluster/local_cluster.sh start [N]   # head + N worker nodes (default 2), 1 CPU each
#   cluster/local_cluster.sh stop
# Ray 2.60 clusters started with `ray start --head` use token auth: clients of `ray job submit`
# need RAY_AUTH_MODE=token in their environment (this script prints what to export).
set -euo pipefail
RAY=${RAY:-ray}
export RAY_AUTH_MODE=token  # every node and client of the cluster uses the token in ~/.ray/auth_token
PORT=${RAYGRAD_HEAD_PORT:-6380}
DASHBOARD_PORT=${RAYGRAD_DASHBOARD_PORT:-8266}
case "${1:-start}" in
  start)
    workers=${2:-2}
    "$RAY" get-auth-token --generate >/dev/null  # `ray start` needs a token and does not create one
    "$RAY" start --head --node-ip-address=127.0.0.1 --port="$PORT" --num-cpus=1 \
      --include-dashboard=true --dashboard-host=127.0.0.1 --dashboard-port="$DASHBOARD_PORT" --disable-usage-stats
    for _ in $(seq "$workers"); do  # one after the other: parallel `ray start`s race for ports
      "$RAY" start --address="127.0.0.1:$PORT" --node-ip-address=127.0.0.1 --num-cpus=1 --disable-usage-stats
    done
    echo
    echo "export RAY_ADDRESS=http://127.0.0.1:$DASHBOARD_PORT RAY_AUTH_MODE=token   # for ray job submit"
    echo "raygrad optimize CONFIG --address 127.0.0.1:$PORT                           # or join from a driver"
    ;;
  stop)
    "$RAY" stop --force
    ;;
  *)
    echo "usage: $0 start [N] | stop" >&2
    exit 2
    ;;
esac
