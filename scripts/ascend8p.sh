#!/usr/bin/env bash
# Rank-table launch in the ModelZoo form: one process per device of this server, one log per rank.
#   bash scripts/ascend8p.sh RANK_TABLE_FILE CONFIG [tool arguments]
#   e.g. python tools/make_rank_table.py --out rank_table_8p.json
#        bash scripts/ascend8p.sh rank_table_8p.json configs/deeplabv3_s16_r101_vocaug.yaml --work-dir work_dirs/s16
# Exports RANK_TABLE_FILE, RANK_SIZE, DEVICE_NUM and, per process, DEVICE_ID and RANK_ID; logs go to
# <work dir>/logs/rank_<rank>.log. If a rank fails, the others are stopped; the exit status is non-zero if any rank
# failed, and every rank's status is reported. Ctrl-C (SIGINT) or SIGTERM to this script is forwarded to the ranks
# (each runs in a session of its own, so a terminal's Ctrl-C reaches them through this script only): every rank
# stops at the same step, rank 0 saves, and the script exits 130 / 143 once all have.
# Environment: DEVICE_TARGET (Ascend; CPU runs the same launch through MindSpore's dynamic cluster, on
#   MS_SCHED_PORT or a free port), TOOL (train | eval | path), PYTHON, SERVER_ID (this server in the table).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
if [ $# -lt 2 ]; then
    echo "usage: $0 RANK_TABLE_FILE CONFIG [tool arguments]" >&2
    exit 2
fi
table="$(realpath "$1")"
config="$2"
shift 2
args=(--config "$config" --set "runtime.device_target=${DEVICE_TARGET:-Ascend}" "$@")
local_ranks="$("$python" "$repo/tools/make_rank_table.py" --validate "$table" --ranks \
    ${SERVER_ID:+--server-id "$SERVER_ID"})"
rank_size="$("$python" -c 'import sys; from deeplabv3.distributed import rank_table
print(len(rank_table.validate(rank_table.load(sys.argv[1]))))' "$table")"
target="$(config_value runtime.device_target "${args[@]}")"
work_dir="$(config_value runtime.work_dir "${args[@]}")"
log_dir="$work_dir/logs"
mkdir -p "$log_dir"
export RANK_TABLE_FILE="$table" RANK_SIZE="$rank_size" DEVICE_NUM="$(wc -l <<< "$local_ranks")"
if [ "$target" = "CPU" ]; then
    export MS_SCHED_HOST="${MS_SCHED_HOST:-127.0.0.1}"
    if [ -n "${MS_SCHED_PORT:-}" ]; then
        if grep -q '^0 ' <<< "$local_ranks"; then
            "$python" -m deeplabv3.distributed check-port "$MS_SCHED_PORT" "$MS_SCHED_HOST"
        fi
    else
        export MS_SCHED_PORT="$("$python" -m deeplabv3.distributed free-port)"
    fi
    echo "CPU: ranks join MindSpore's dynamic cluster, scheduler $MS_SCHED_HOST:$MS_SCHED_PORT"
fi

pids=()
ranks=()
devices=()
while read -r rank device; do
    log="$log_dir/rank_$rank.log"
    DEVICE_ID="$device" RANK_ID="$rank" setsid "$python" "$tool" "${args[@]}" > "$log" 2>&1 &
    pids+=("$!")
    ranks+=("$rank")
    devices+=("$device")
    echo "rank $rank (device $device): pid $!, log $log"
done <<< "$local_ranks"

status=()
finished=0
stop_all() {  # signal every rank still running (never one already reaped: its pid may be reused)
    for i in "${!pids[@]}"; do
        [ -n "${status[$i]:-}" ] || kill -"$1" "${pids[$i]}" 2>/dev/null || true
    done
}
interrupted=""
interrupt() {  # forward the signal; the ranks agree on the stop and rank 0 saves
    [ -n "$interrupted" ] || interrupted="$1"
    echo "SIG$1: stopping all ranks (rank 0 saves first)"
    stop_all "$1"
}
trap 'interrupt INT' INT
trap 'interrupt TERM' TERM
trap 'stop_all KILL' EXIT  # never leave a rank behind, whatever ends this script

failed=""
while [ "$finished" -lt "${#pids[@]}" ]; do
    for i in "${!pids[@]}"; do
        [ -n "${status[$i]:-}" ] && continue
        kill -0 "${pids[$i]}" 2>/dev/null && continue
        code=0
        wait "${pids[$i]}" || code=$?
        status[$i]="$code"
        finished=$((finished + 1))
        if [ "$code" != 0 ] && [ -z "$failed" ] && [ -z "$interrupted" ]; then
            failed="$i"
            failed_at=$SECONDS
            echo "rank ${ranks[$i]} exited with status $code; stopping the other ranks" \
                 "(log: $log_dir/rank_${ranks[$i]}.log)" >&2
            tail -n 5 "$log_dir/rank_${ranks[$i]}.log" | sed 's/^/    /' >&2
            stop_all TERM
        fi
    done
    if [ -n "$failed" ] && [ $((SECONDS - failed_at)) -ge 10 ]; then
        stop_all KILL  # a rank stuck in a collective may not get to handle SIGTERM
    fi
    sleep 0.5 || true  # a signal may end the sleep: the loop goes on until every rank has stopped
done

if [ "$target" = "CPU" ]; then
    # Rank 0 started MindSpore's scheduler in its own process group (setsid made rank 0 its leader). A rank 0 that
    # was killed leaves it waiting ~20 s for the ranks' heartbeats; now that every rank has stopped it serves no one.
    # (The group's id stays taken while the scheduler lives, so this reaches no other process.)
    for i in "${!pids[@]}"; do
        if [ "${ranks[$i]}" = 0 ]; then kill -TERM -- "-${pids[$i]}" 2>/dev/null || true; fi
    done
fi
echo "exit status per rank:"
for i in "${!pids[@]}"; do
    code="${status[$i]}"
    note=""
    if [ "$code" -gt 128 ]; then
        note=" (signal $((code - 128)))"
    fi
    if [ -n "$failed" ] && [ "$i" != "$failed" ] && [ "$code" != 0 ]; then
        note="$note, stopped after rank ${ranks[$failed]} failed"
    fi
    echo "  rank ${ranks[$i]} (device ${devices[$i]}): $code$note"
done
if [ -n "$failed" ]; then
    exit 1
fi
if [ -n "$interrupted" ]; then
    exit $((128 + $(kill -l "$interrupted")))
fi
