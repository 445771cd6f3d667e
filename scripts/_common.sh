# Sourced by the launchers: repository root, the Python interpreter and the tool a launch runs.
#   PYTHON  interpreter (default: the repository's .venv, else python3)
#   TOOL    train (default), eval, another tools/<name>.py, or a path to a script
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -n "${PYTHON:-}" ]; then
    python="$PYTHON"
elif [ -x "$repo/.venv/bin/python" ]; then
    python="$repo/.venv/bin/python"
else
    python="$(command -v python3)"
fi
case "${TOOL:-train}" in
    */*|*.py) tool="${TOOL}" ;;
    *) tool="$repo/tools/${TOOL:-train}.py" ;;
esac
if [ ! -f "$tool" ]; then
    echo "error: TOOL=${TOOL:-train}: no such script ($tool)" >&2
    exit 2
fi
export PYTHONUNBUFFERED=1

# Print the value of a dotted config key for the tool arguments "$@" (--config, --set, --work-dir).
config_value() {
    "$python" -m deeplabv3.distributed config-value "$@"
}

# The "N CONFIG [tool arguments]" of the multi-process launchers: sets n and config (the caller shifts 2).
require_n_and_config() {
    if [ $# -lt 2 ] || ! [[ "$1" =~ ^[1-9][0-9]*$ ]]; then
        echo "usage: $0 N CONFIG [tool arguments]   (N: number of processes)" >&2
        exit 2
    fi
    n="$1"
    config="$2"
}

# The direct children of process $1.
children_of() {
    cat "/proc/$1/task/"*/children 2>/dev/null || true
}

# run_supervised SELECT CMD...: run the launcher CMD in a session of its own and wait for it; its status is left in
# supervised_status. A Ctrl-C on the terminal then reaches this script only, and INT/TERM sent to it are
# forwarded, as the same signal, to the ranks that "SELECT <launcher pid>" prints (to CMD itself when it prints
# none): the ranks agree on the stop, rank 0 saves, and the launcher ends once they have, instead of killing them
# first (OpenMPI SIGKILLs ranks 1 s after its own SIGTERM, msrun SIGKILLs its workers on Ctrl-C). After a signal
# it exits 128 + the first one's number.
run_supervised() {
    supervised_select="$1"
    shift
    setsid "$@" &
    supervised_pid=$!
    supervised_signal=""
    supervised_pending=""
    supervised_targets=""
    # The traps only note the signal; the loop forwards it, so no subshell runs inside a trap (a Ctrl-C to the
    # whole group could otherwise end this script there, under set -e, before the ranks have stopped).
    trap 'supervised_pending=INT' INT
    trap 'supervised_pending=TERM' TERM
    while kill -0 "$supervised_pid" 2>/dev/null; do
        wait "$supervised_pid" 2>/dev/null || true
        if [ -n "$supervised_pending" ]; then
            supervised_forward "$supervised_pending" || true
            supervised_pending=""
        fi
    done
    supervised_status=0
    wait "$supervised_pid" 2>/dev/null || supervised_status=$?
    # The launcher can exit while its scheduler and the ranks it was stopping are still leaving: wait for its
    # whole session and for every rank the signal went to (msrun starts its workers in sessions of their own).
    local waited=0
    while { session_alive "$supervised_pid" || any_alive $supervised_targets; } && [ "$waited" -lt 300 ]; do
        sleep 0.1
        waited=$((waited + 1))
    done
    trap - INT TERM
    if [ -n "$supervised_signal" ]; then
        echo "interrupted (SIG$supervised_signal): the ranks stopped; continue with --resume" >&2
        exit $((128 + $(kill -l "$supervised_signal")))
    fi
}

# read_stat FILE: the fields of a /proc/<pid>/stat file after the command name (state ppid pgrp session ...) into
# the array proc_stat; fails when the process is gone. Read from /proc, so no ps is needed.
read_stat() {
    local stat
    stat="$(cat "$1" 2>/dev/null)" || return 1
    read -r -a proc_stat <<< "${stat##*) }"
}

# session_alive SID: whether a process (not a zombie) of session SID still runs.
session_alive() {
    local file
    for file in /proc/[0-9]*/stat; do
        read_stat "$file" || continue
        if [ "${proc_stat[3]}" = "$1" ] && [ "${proc_stat[0]}" != Z ]; then
            return 0
        fi
    done
    return 1
}

supervised_forward() {
    [ -n "$supervised_signal" ] || supervised_signal="$1"
    local targets="" tries=0
    # /proc's children lists can miss a process while the launcher's threads change: look again before falling
    # back to the launcher itself (msrun would SIGKILL its workers on a signal of its own).
    while [ -z "$targets" ] && [ "$tries" -lt 20 ] && kill -0 "$supervised_pid" 2>/dev/null; do
        targets="$("$supervised_select" "$supervised_pid")" || targets=""
        [ -n "$targets" ] || sleep 0.1
        tries=$((tries + 1))
    done
    supervised_targets="$supervised_targets $targets"
    # shellcheck disable=SC2086  # a list of pids
    kill -s "$1" ${targets:-$supervised_pid} 2>/dev/null || true
}

# any_alive PID...: whether any of the processes still runs (zombies count as gone).
any_alive() {
    local pid
    for pid in "$@"; do
        read_stat "/proc/$pid/stat" || continue
        [ "${proc_stat[0]}" = Z ] || return 0
    done
    return 1
}
