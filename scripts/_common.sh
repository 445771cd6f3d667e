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
