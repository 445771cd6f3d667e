"""Write an Ascend rank table (HCCL, version 1.0) for this server, or validate an existing one.

    python tools/make_rank_table.py --out rank_table_8p.json                     # devices and IPs from /etc/hccn.conf
    python tools/make_rank_table.py --devices 0-3 --out rank_table_4p.json
    python tools/make_rank_table.py --device-ips 192.168.100.101 192.168.100.102 --server-id 10.0.0.1 --out t.json
    python tools/make_rank_table.py --validate rank_table_8p.json [--ranks]
    python tools/make_rank_table.py --merge server0.json server1.json --out rank_table_16p.json

Several servers: write each server's table on that server (--out), copy them to one place, --merge them in server
order (ranks are renumbered to continue across servers), and give every server the merged table.

--ranks prints "<rank> <device id>" for each rank the server (--server-id, else this host) runs; scripts/ascend8p.sh
launches one process per line.
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional, Sequence

from deeplabv3.cli import run_tool
from deeplabv3.distributed import rank_table


def parse_devices(text: str) -> List[int]:
    """``"0-7"``, ``"0,1,2"`` or ``"4-5,7"`` -> device ids."""
    ids: List[int] = []
    try:
        for part in text.split(","):
            first, _, last = part.strip().partition("-")
            ids.extend(range(int(first), int(last or first) + 1))
    except ValueError:
        raise rank_table.RankTableError(f"--devices {text!r}: expected ids such as 0-7 or 0,1,2,3") from None
    if len(set(ids)) != len(ids) or not ids:
        raise rank_table.RankTableError(f"--devices {text!r}: give each device id once")
    return ids


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--validate", metavar="FILE", help="check an existing rank table and summarise it")
    parser.add_argument("--ranks", action="store_true", help="with --validate: print '<rank> <device id>' lines of "
                                                             "this server's ranks")
    parser.add_argument("--merge", nargs="+", metavar="TABLE", help="one table of these servers' tables, in order")
    parser.add_argument("--out", metavar="FILE", help="rank table to write")
    parser.add_argument("--devices", help="device ids, e.g. 0-7 (default: every device of --device-ips or hccn.conf)")
    parser.add_argument("--device-ips", nargs="+", metavar="IP", help="device IPs in device-id order (default: "
                                                                      "read --hccn-conf)")
    parser.add_argument("--hccn-conf", default=rank_table.HCCN_CONF, help="NPU address file (default %(default)s)")
    parser.add_argument("--server-id", help="this server's IP (default: detected)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.validate:
        entries = rank_table.validate(rank_table.load(args.validate))
        if args.ranks:
            for entry in rank_table.server_ranks(entries, args.server_id):
                print(entry.rank, entry.device_id)
        else:
            servers = len({e.server_id for e in entries})
            print(f"{args.validate}: valid rank table, {len(entries)} rank(s) on {servers} server(s)")
        return 0
    if not args.out:
        parser.error("give --out FILE to write a table, or --validate FILE to check one")
    if args.merge:
        table = rank_table.merge([rank_table.load(path) for path in args.merge])
        path = rank_table.write(args.out, table)
        print(f"{path}: {len(rank_table.validate(table))} rank(s) on {table['server_count']} server(s)")
        return 0
    if args.device_ips:
        ids = parse_devices(args.devices) if args.devices else list(range(len(args.device_ips)))
        if len(ids) != len(args.device_ips):
            raise rank_table.RankTableError(f"{len(ids)} device id(s) but {len(args.device_ips)} device IP(s)")
        addresses = dict(zip(ids, args.device_ips))
    else:
        known = rank_table.read_hccn_conf(args.hccn_conf)
        ids = parse_devices(args.devices) if args.devices else sorted(known)
        missing = [i for i in ids if i not in known]
        if missing:
            raise rank_table.RankTableError(f"{args.hccn_conf} has no address for device(s) {missing}")
        addresses = {i: known[i] for i in ids}
    table = rank_table.build(addresses, args.server_id or rank_table.host_ip())
    path = rank_table.write(args.out, table)
    print(f"{path}: {len(addresses)} device(s) on server {table['server_list'][0]['server_id']}")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
