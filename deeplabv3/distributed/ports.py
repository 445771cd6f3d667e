"""TCP ports of a launch: a free one for a scheduler, and a taken one reported before anything starts.

MindSpore's scheduler fails late and obscurely on a busy port, so the bridge, msrun's scheduler and the shell
launchers check first. No MindSpore import: the shell launchers ask these through ``python -m
deeplabv3.distributed`` and must get an answer in a fraction of a second.
"""
from __future__ import annotations

import socket

from ..errors import UserError


class PortError(UserError):
    """A port a launch needs is taken."""


def port_in_use(host: str, port: int) -> bool:
    """Whether a server could not bind ``host:port`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on at this moment."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def check_port_free(host: str, port: int, source: str) -> None:
    """Raise :class:`PortError` naming ``source`` (where the port came from) when ``port`` is taken."""
    if not 0 < port < 65536:
        raise PortError(f"port {port} ({source}) is not a TCP port number (1-65535)")
    if port_in_use(host, port):
        raise PortError(f"port {port} on {host} ({source}) is already in use, so the scheduler cannot listen on "
                        f"it; stop the process holding it (see 'ss -ltnp | grep :{port}') or choose another port")
