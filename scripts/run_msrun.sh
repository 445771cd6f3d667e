#!/usr/bin/env bash
# N processes of this host under msrun (MindSpore's dynamic cluster): scripts/run_msrun.sh N CONFIG [tool arguments]
#   e.g. scripts/run_msrun.sh 8 configs/deeplabv3_s16_r101_vocaug.yaml --work-dir work_dirs/s16
#        TOOL=eval scripts/run_msrun.sh 2 configs/deeplabv3_s8_r101_vocaug.yaml --checkpoint s8.ckpt
# Logs: <log dir>/scheduler.log and worker_<rank>.log (the workers' output is also shown here).
# Environment: TOOL (train | eval | path), PYTHON, MASTER_PORT (default: a free port), LOG_DIR (default:
#   <work dir>/msrun_logs), CLUSTER_TIME_OUT (seconds to form the cluster; default: distributed.timeout).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
require_n_and_config "$@"
shift 2
work_dir="$(config_value runtime.work_dir --config "$config" "$@")"
timeout="${CLUSTER_TIME_OUT:-$(config_value distributed.timeout --config "$config" "$@")}"
if [ -n "${MASTER_PORT:-}" ]; then
    "$python" -m deeplabv3.distributed check-port "$MASTER_PORT"
    port="$MASTER_PORT"
else
    port="$("$python" -m deeplabv3.distributed free-port)"
fi
log_dir="${LOG_DIR:-$work_dir/msrun_logs}"
# msrun starts every process as "python <script>": make "python" the interpreter chosen above.
shim="$(mktemp -d)"
trap 'rm -rf "$shim"' EXIT
printf '#!/bin/sh\nexec "%s" "$@"\n' "$python" > "$shim/python"
chmod +x "$shim/python"
echo "msrun: $n workers, scheduler 127.0.0.1:$port, logs in $log_dir"
status=0
msrun='import sys; from mindspore.parallel.cluster.run import main; sys.argv[0] = "msrun"; sys.exit(main())'
PATH="$shim:$PATH" "$python" -c "$msrun" \
    --worker_num="$n" --local_worker_num="$n" --master_addr=127.0.0.1 --master_port="$port" --join=True \
    --cluster_time_out="$timeout" --log_dir="$log_dir" "$tool" --config "$config" "$@" || status=$?
exit "$status"
