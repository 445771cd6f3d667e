"""Ascend rank tables (HCCL, version 1.0): write one for this server, validate any, list a server's ranks.

Format (every value a string; ranks continue across servers in ``server_list`` order)::

    {"version": "1.0", "server_count": "1",
     "server_list": [{"server_id": "10.0.0.1", "host_nic_ip": "reserve",
                      "device": [{"device_id": "0", "device_ip": "192.168.100.101", "rank_id": "0"}, ...]}],
     "status": "completed"}

The device IPs are the NPUs' own addresses, configured in ``/etc/hccn.conf`` as ``address_<device id>=<ip>``.
HCCL reports a wrong table only deep inside ``init()``; :func:`validate` names the field and what to fix first.
Several servers: write each server's table there, then :func:`merge` them into the one table every server uses.
"""
from __future__ import annotations

import ipaddress
import json
import os
import socket
from pathlib import Path
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Union

from ..errors import UserError
from ..fileio import write_json_atomic

PathLike = Union[str, os.PathLike]
HCCN_CONF = "/etc/hccn.conf"
VERSION = "1.0"


class RankTableError(UserError):
    """A rank table, or what it is built from, is invalid; the message names the field."""


class RankEntry(NamedTuple):
    """One rank of a table."""

    rank: int
    server_id: str
    device_id: int
    device_ip: str


def read_hccn_conf(path: PathLike = HCCN_CONF) -> Dict[int, str]:
    """``{device id: device ip}`` from the ``address_<id>=<ip>`` lines of an hccn.conf."""
    path = Path(path)
    if not path.is_file():
        raise RankTableError(f"{path} not found: it holds the NPU addresses (address_<id>=<ip>); give the device "
                             f"IPs with --device-ips instead, or point --hccn-conf at the file")
    addresses: Dict[int, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        key, sep, value = line.strip().partition("=")
        if sep and key.startswith("address_"):
            suffix = key[len("address_"):]
            if not suffix.isdigit():
                raise RankTableError(f"{path}:{number}: '{key}' should be address_<device id>")
            addresses[int(suffix)] = _check_ip(value.strip(), f"{path}:{number}")
    if not addresses:
        raise RankTableError(f"{path}: no address_<device id>=<ip> lines")
    return addresses


def host_ip() -> str:
    """This server's IP address as other servers would reach it (falls back to 127.0.0.1)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect(("10.255.255.255", 1))  # no packet is sent; this only selects the outgoing interface
            return sock.getsockname()[0]
    except OSError:
        return "127.0.0.1"


def build(device_ips: Mapping[int, str], server_id: str) -> Dict[str, Any]:
    """A one-server table: ``device_ips`` maps device id -> device IP; ranks follow the device ids' order."""
    if not device_ips:
        raise RankTableError("no devices: give at least one device id and IP")
    _check_ip(server_id, "server id")
    devices = [{"device_id": str(dev), "device_ip": _check_ip(ip, f"device {dev}"), "rank_id": str(rank)}
               for rank, (dev, ip) in enumerate(sorted(device_ips.items()))]
    table = {"version": VERSION, "server_count": "1",
             "server_list": [{"server_id": server_id, "device": devices, "host_nic_ip": "reserve"}],
             "status": "completed"}
    validate(table)
    return table


def merge(tables: Sequence[Mapping[str, Any]]) -> Dict[str, Any]:
    """One table of several servers' tables (each valid on its own), in the given order, ranks renumbered to
    continue across servers as HCCL expects."""
    if not tables:
        raise RankTableError("no tables to merge")
    servers: List[Dict[str, Any]] = []
    rank = 0
    for table in tables:
        validate(table)
        for server in table["server_list"]:
            devices = []
            for device in server["device"]:
                devices.append({**device, "rank_id": str(rank)})
                rank += 1
            servers.append({**server, "device": devices})
    merged = {"version": VERSION, "server_count": str(len(servers)), "server_list": servers, "status": "completed"}
    validate(merged)  # e.g. the same server twice
    return merged


def write(path: PathLike, table: Mapping[str, Any]) -> Path:
    """Validate ``table`` and write it atomically."""
    validate(table)
    return write_json_atomic(path, table)


def _check_ip(value: Any, where: str) -> str:
    try:
        return str(ipaddress.IPv4Address(str(value)))
    except ValueError:
        raise RankTableError(f"{where}: {value!r} is not an IPv4 address") from None


def _field(obj: Any, key: str, where: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise RankTableError(f"{where}: missing \"{key}\"")
    return obj[key]


def _int_string(value: Any, where: str) -> int:
    if not isinstance(value, str) or not value.isdigit():
        raise RankTableError(f"{where} is {value!r}; rank tables write it as a string of digits, e.g. \"0\"")
    return int(value)


def load(path: PathLike) -> Dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise RankTableError(f"rank table not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RankTableError(f"{path}: not valid JSON ({exc})") from None
    try:
        validate(data)
    except RankTableError as exc:
        raise RankTableError(f"{path}: {exc}") from None
    return data


def validate(table: Any) -> List[RankEntry]:
    """Check a version 1.0 table; returns its ranks in order. Errors name the field and what is expected."""
    if not isinstance(table, dict):
        raise RankTableError("the top level must be a JSON object")
    if _field(table, "version", "rank table") != VERSION:
        raise RankTableError(f"version is {table['version']!r}; only \"{VERSION}\" is supported")
    if _field(table, "status", "rank table") != "completed":
        raise RankTableError(f"status is {table['status']!r}; it must be \"completed\"")
    servers = _field(table, "server_list", "rank table")
    if not isinstance(servers, list) or not servers:
        raise RankTableError("server_list must be a non-empty list")
    count = _int_string(_field(table, "server_count", "rank table"), "server_count")
    if count != len(servers):
        raise RankTableError(f"server_count is \"{count}\" but server_list has {len(servers)} server(s)")
    entries: List[RankEntry] = []
    seen_servers = set()
    for s, server in enumerate(servers):
        where = f"server_list[{s}]"
        server_id = _check_ip(_field(server, "server_id", where), f"{where}.server_id")
        if server_id in seen_servers:
            raise RankTableError(f"{where}.server_id {server_id} appears twice")
        seen_servers.add(server_id)
        devices = _field(server, "device", where)
        if not isinstance(devices, list) or not devices:
            raise RankTableError(f"{where}.device must be a non-empty list")
        ids, ips = set(), set()
        for d, device in enumerate(devices):
            dwhere = f"{where}.device[{d}]"
            device_id = _int_string(_field(device, "device_id", dwhere), f"{dwhere}.device_id")
            device_ip = _check_ip(_field(device, "device_ip", dwhere), f"{dwhere}.device_ip")
            rank = _int_string(_field(device, "rank_id", dwhere), f"{dwhere}.rank_id")
            if device_id in ids:
                raise RankTableError(f"{dwhere}.device_id {device_id} appears twice on server {server_id}")
            if device_ip in ips:
                raise RankTableError(f"{dwhere}.device_ip {device_ip} appears twice on server {server_id}")
            if rank != len(entries):
                raise RankTableError(f"{dwhere}.rank_id is \"{rank}\", expected \"{len(entries)}\": ranks count up "
                                     f"from 0 without gaps, continuing across servers in server_list order")
            ids.add(device_id)
            ips.add(device_ip)
            entries.append(RankEntry(rank, server_id, device_id, device_ip))
    return entries


def server_ranks(entries: Sequence[RankEntry], server_id: Optional[str] = None) -> List[RankEntry]:
    """The ranks a server runs: ``server_id``, else the server with this host's IP, else the only server."""
    servers = list(dict.fromkeys(e.server_id for e in entries))
    if server_id is None:
        here = host_ip()
        server_id = here if here in servers else (servers[0] if len(servers) == 1 else None)
        if server_id is None:
            raise RankTableError(f"this host ({here}) is none of the table's servers ({', '.join(servers)}); "
                                 f"name the server with --server-id")
    mine = [e for e in entries if e.server_id == server_id]
    if not mine:
        raise RankTableError(f"server {server_id} is not in the rank table (servers: {', '.join(servers)})")
    return mine
