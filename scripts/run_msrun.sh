#!/usr/bin/env bash
# N processes of this host under msrun (MindSpore's dynamic cluster): scripts/run_msrun.sh N CONFIG [tool arguments]
#   e.g. scripts/run_msrun.sh 8 configs/deeplabv3_s16_r101_vocaug.yaml --work-dir work_dirs/s16
#        TOOL=eval scripts/run_msrun.sh 2 configs/deeplabv3_s8_r101_vocaug.yaml --checkpoint s8.ckpt
# Several hosts: run it on every host with the same N, NODES and MASTER_ADDR/MASTER_PORT and each its NODE_RANK:
#   NODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 MASTER_PORT=8118 scripts/run_msrun.sh 8 CONFIG ...   # on 10.0.0.1
#   NODES=2 NODE_RANK=1 MASTER_ADDR=10.0.0.1 MASTER_PORT=8118 scripts/run_msrun.sh 8 CONFIG ...   # on the other
# Node r runs global ranks r*N .. r*N+N-1; node 0 also runs the scheduler on MASTER_ADDR:MASTER_PORT.
# Logs: <log dir>/scheduler.log and worker_<rank>.log (the workers' output is also shown here).
# Ctrl-C (SIGINT) or SIGTERM to this script: every rank stops at the same step, rank 0 saves, exit 130 / 143.
# Environment: TOOL (train | eval | path), PYTHON, MASTER_PORT (default: a free port; several hosts: required),
#   MASTER_ADDR (default 127.0.0.1), NODES (default 1), NODE_RANK (default 0), LOG_DIR (default:
#   <work dir>/msrun_logs), CLUSTER_TIME_OUT (seconds to form the cluster; default: distributed.timeout).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
require_n_and_config "$@"
shift 2
nodes="${NODES:-1}"
node_rank="${NODE_RANK:-0}"
master="${MASTER_ADDR:-127.0.0.1}"
if ! [[ "$nodes" =~ ^[1-9][0-9]*$ ]] || ! [[ "$node_rank" =~ ^[0-9]+$ ]] || [ "$node_rank" -ge "$nodes" ]; then
    echo "error: NODES=$nodes NODE_RANK=$node_rank: NODES is the number of hosts (>= 1) and NODE_RANK this" \
         "host's index, 0 .. NODES-1" >&2
    exit 2
fi
work_dir="$(config_value runtime.work_dir --config "$config" "$@")"
timeout="${CLUSTER_TIME_OUT:-$(config_value distributed.timeout --config "$config" "$@")}"
if [ -n "${MASTER_PORT:-}" ]; then
    if [ "$node_rank" = 0 ]; then
        "$python" -m deeplabv3.distributed check-port "$MASTER_PORT" "$master"
    fi
    port="$MASTER_PORT"
elif [ "$nodes" -gt 1 ]; then
    echo "error: NODES=$nodes: give every host the same MASTER_PORT (the scheduler's port on $master)" >&2
    exit 2
else
    port="$("$python" -m deeplabv3.distributed free-port)"
fi
log_dir="${LOG_DIR:-$work_dir/msrun_logs}"
# msrun starts every process as "python <script>": make "python" the interpreter chosen above.
shim="$(mktemp -d)"
trap 'rm -rf "$shim"' EXIT
printf '#!/bin/sh\nexec "%s" "$@"\n' "$python" > "$shim/python"
chmod +x "$shim/python"
export PATH="$shim:$PATH" DEEPLABV3_NODE_RANK="$node_rank"  # node 0's scheduler serves the job
export DEEPLABV3_NODES="$nodes"  # a cluster that does not form names the other nodes' ranks

# msrun's worker processes (not its scheduler): the processes a stop signal is forwarded to.
msrun_workers() {
    local child
    for child in $(children_of "$1"); do
        if grep -qxz 'MS_ROLE=MS_WORKER' "/proc/$child/environ" 2>/dev/null; then echo "$child"; fi
    done
}

echo "msrun: node $node_rank of $nodes, $n of $((n * nodes)) workers, scheduler $master:$port, logs in $log_dir"
# msrun reports a failed (or stopped) worker with a traceback of its own: one line instead.
msrun='import sys
from mindspore.parallel.cluster.run import main
sys.argv[0] = "msrun"
try:
    sys.exit(main())
except RuntimeError as exc:
    sys.exit(f"msrun: {exc}")'
run_supervised msrun_workers "$python" -c "$msrun" \
    --worker_num="$((n * nodes))" --local_worker_num="$n" --node_rank="$node_rank" --master_addr="$master" \
    --master_port="$port" --join=True --cluster_time_out="$timeout" --log_dir="$log_dir" \
    "$tool" --config "$config" "$@"
if [ "$supervised_status" != 0 ]; then  # the workers' own error messages, which msrun does not show
    grep -h '^error: ' "$log_dir"/worker_*.log 2>/dev/null | sort -u >&2 || true
fi
exit "$supervised_status"
