#!/usr/bin/env bash
# N processes under OpenMPI: scripts/run_mpirun.sh N CONFIG [tool arguments]
#   e.g. scripts/run_mpirun.sh 8 configs/deeplabv3_s16_r101_vocaug.yaml --work-dir work_dirs/s16
#        TOOL=eval scripts/run_mpirun.sh 4 configs/deeplabv3_s8_r101_vocaug.yaml --checkpoint s8.ckpt
# On CPU the ranks average gradients with mpi4py (distributed.backend: auto) or, with
# --set distributed.backend=mindspore, through MindSpore's dynamic cluster; on Ascend/GPU with MindSpore.
# Environment: TOOL (train | eval | path), PYTHON, HOSTFILE (several hosts; default: this host over loopback),
#   MPIRUN_ARGS (extra mpirun flags).
# Ctrl-C (SIGINT) or SIGTERM to this script goes to the ranks of this host (mpirun itself would SIGKILL them 1 s
# after its own SIGTERM): every rank stops at the same step, rank 0 saves, exit 130 / 143.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
require_n_and_config "$@"
shift 2
if ! command -v mpirun >/dev/null 2>&1; then
    echo "error: mpirun not found; install OpenMPI (Debian/Ubuntu: apt-get install openmpi-bin) or use" \
         "scripts/run_msrun.sh" >&2
    exit 2
fi
flags=(-n "$n" --oversubscribe)
if [ "$(id -u)" = "0" ]; then
    flags+=(--allow-run-as-root)
fi
if [ -n "${HOSTFILE:-}" ]; then
    flags+=(--hostfile "$HOSTFILE" -x PYTHONUNBUFFERED -x PATH -x LD_LIBRARY_PATH)
else
    # Everything on this host: shared memory between ranks, OpenMPI's own wiring over loopback only.
    flags+=(--mca btl self,vader --mca oob_tcp_if_include lo)
fi
# shellcheck disable=SC2086  # MPIRUN_ARGS is a list of flags
run_supervised children_of mpirun "${flags[@]}" ${MPIRUN_ARGS:-} "$python" "$tool" --config "$config" "$@"
exit "$supervised_status"
