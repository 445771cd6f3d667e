"""What the shell launchers (``scripts/run_*.sh``, ``scripts/ascend8p.sh``) ask of Python: ports and config values.

    python -m deeplabv3.distributed free-port                 a TCP port nothing listens on (127.0.0.1)
    python -m deeplabv3.distributed check-port PORT [HOST]    exit 2 with a clear message if PORT is taken
    python -m deeplabv3.distributed config-value KEY ARGS...  KEY (dotted) of the config a tool's ARGS describe
                                                              (--config, --set, --work-dir), e.g. runtime.work_dir

No MindSpore import (the package imports its MindSpore modules on first use): these answer in a fraction of a
second.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, List, Optional, Sequence

from ..cli import run_tool
from ..config import load_config, replace
from .ports import check_port_free, free_port


def config_value(key: str, tool_args: Sequence[str]) -> Any:
    """The value of dotted ``key`` in the config a tool's command line (``--config``, ``--set``, ``--work-dir``)
    describes; other arguments are ignored."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--config")
    parser.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[])
    parser.add_argument("--work-dir")
    args, _ = parser.parse_known_args(list(tool_args))
    cfg: Any = load_config(args.config, args.overrides)
    if args.work_dir:
        cfg = replace(cfg, **{"runtime.work_dir": args.work_dir})
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg


def main(argv: Optional[Sequence[str]] = None) -> int:
    args: List[str] = list(sys.argv[1:] if argv is None else argv)
    command = args.pop(0) if args else ""
    if command == "free-port":
        print(free_port())
    elif command == "check-port" and args:
        check_port_free(args[1] if len(args) > 1 else "127.0.0.1", int(args[0]), "the launcher's port")
    elif command == "config-value" and args:
        print(config_value(args[0], args[1:]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
