"""Launch detection, backend choice, rank tables and launcher helpers: no processes started, seconds in all."""
from __future__ import annotations

import json
import socket
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from deeplabv3.config import load_config
from deeplabv3.distributed import DistributedError, Launch, detect_launch, init_distributed, rank_table, resolve_backend
from deeplabv3.distributed.ports import PortError, check_port_free
from deeplabv3.distributed.rank_table import RankTableError
from deeplabv3.distributed.__main__ import config_value


def test_single_process_without_launcher_variables():
    assert detect_launch({}) == Launch("single", 0, 1)
    assert detect_launch({"RANK_SIZE": "1", "RANK_ID": "0"}) == Launch("single", 0, 1)


def test_each_launcher_is_recognised_with_its_rank():
    assert detect_launch({"MS_ROLE": "MS_WORKER", "MS_WORKER_NUM": "4", "MS_NODE_ID": "2", "DEVICE_ID": "2"}) == \
        Launch("msrun", 2, 4, 2, "worker")
    assert detect_launch({"MS_ROLE": "MS_SCHED", "MS_WORKER_NUM": "4"}).role == "scheduler"
    assert detect_launch({"OMPI_COMM_WORLD_SIZE": "3", "OMPI_COMM_WORLD_RANK": "1",
                          "OMPI_COMM_WORLD_LOCAL_RANK": "1"}) == Launch("mpirun", 1, 3, 1)
    assert detect_launch({"RANK_TABLE_FILE": "t.json", "RANK_SIZE": "8", "RANK_ID": "5", "DEVICE_ID": "5"}) == \
        Launch("rank_table", 5, 8, 5)


def test_rank_size_without_a_launcher_refuses_to_train_an_unsynchronised_copy():
    with pytest.raises(DistributedError, match="RANK_SIZE=8 is set but no launcher"):
        detect_launch({"RANK_SIZE": "8", "RANK_ID": "3"})


@pytest.mark.parametrize("env, message", [
    ({"RANK_TABLE_FILE": "t.json", "RANK_SIZE": "2", "RANK_ID": "2"}, r"RANK_ID=2 is not in \[0, RANK_SIZE=2\)"),
    ({"RANK_TABLE_FILE": "t.json", "RANK_ID": "0"}, "RANK_SIZE is not set"),
    ({"OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "x"}, "OMPI_COMM_WORLD_RANK='x' is not an integer"),
    ({"MS_ROLE": "MS_PSERVER", "MS_WORKER_NUM": "2"}, "only msrun's MS_WORKER and MS_SCHED"),
])
def test_malformed_launch_variables_are_named(env, message):
    with pytest.raises(DistributedError, match=message):
        detect_launch(env)


@pytest.mark.parametrize("launch, device, wanted, backend", [
    (Launch("single", 0, 1), "CPU", "auto", "none"),
    (Launch("mpirun", 0, 1), "CPU", "mindspore", "none"),
    (Launch("mpirun", 0, 2), "CPU", "auto", "mpi4py"),
    (Launch("mpirun", 0, 2), "GPU", "auto", "mindspore"),
    (Launch("mpirun", 0, 2), "CPU", "mindspore", "mindspore"),
    (Launch("msrun", 0, 1), "CPU", "auto", "mindspore"),
    (Launch("rank_table", 0, 8), "Ascend", "auto", "mindspore"),
])
def test_backend_choice(launch, device, wanted, backend):
    cfg = load_config(None, [f"runtime.device_target={device}", f"distributed.backend={wanted}"])
    assert resolve_backend(cfg, launch) == backend


def test_impossible_backend_combinations_are_refused():
    with pytest.raises(DistributedError, match="mpi4py needs an mpirun launch"):
        resolve_backend(load_config(None, ["distributed.backend=mpi4py"]), Launch("msrun", 0, 2))
    with pytest.raises(DistributedError, match="rank table .* describes Ascend devices"):
        resolve_backend(load_config(None, ["runtime.device_target=GPU"]), Launch("rank_table", 0, 2))


def test_single_process_context_collectives_are_the_identity(monkeypatch):
    for name in ("RANK_SIZE", "RANK_TABLE_FILE", "MS_ROLE", "OMPI_COMM_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    ctx = init_distributed(load_config(None, []))
    assert (ctx.rank, ctx.world_size, ctx.is_main, ctx.backend, ctx.grad_reducer) == (0, 1, True, "none", None)
    matrix = np.arange(6, dtype=np.int64).reshape(2, 3)
    assert np.array_equal(ctx.allreduce_sum(matrix), matrix)
    assert ctx.broadcast({"a": 1}) == {"a": 1}
    ctx.barrier()
    ctx.finalize()


def _two_rank_table(tmp_path):
    table = rank_table.build({0: "192.168.100.101", 1: "192.168.100.102"}, "10.0.0.1")
    return rank_table.write(tmp_path / "rank_table_2p.json", table)


def test_rank_table_launch_on_cpu_needs_the_scheduler_port(tmp_path, monkeypatch):
    monkeypatch.delenv("MS_SCHED_PORT", raising=False)
    monkeypatch.setenv("RANK_TABLE_FILE", str(_two_rank_table(tmp_path)))
    monkeypatch.setenv("RANK_SIZE", "2")
    monkeypatch.setenv("RANK_ID", "1")
    cfg = load_config(None, [f"runtime.work_dir={tmp_path}"])
    with pytest.raises(DistributedError, match="export MS_SCHED_PORT .* as scripts/ascend8p.sh does"):
        init_distributed(cfg)
    monkeypatch.setenv("RANK_SIZE", "4")
    monkeypatch.setenv("RANK_ID", "3")
    with pytest.raises(DistributedError, match="RANK_SIZE=4 but the rank table .* lists 2 rank"):
        init_distributed(cfg)


def test_rank_table_round_trip_and_server_ranks(tmp_path):
    path = _two_rank_table(tmp_path)
    data = json.loads(path.read_text())
    assert data["version"] == "1.0" and data["server_count"] == "1" and data["status"] == "completed"
    assert data["server_list"][0]["device"][1] == {"device_id": "1", "device_ip": "192.168.100.102", "rank_id": "1"}
    entries = rank_table.validate(rank_table.load(path))
    assert [(e.rank, e.device_id) for e in rank_table.server_ranks(entries, "10.0.0.1")] == [(0, 0), (1, 1)]
    assert rank_table.server_ranks(entries) == entries  # the only server
    with pytest.raises(RankTableError, match="server 10.0.0.9 is not in the rank table"):
        rank_table.server_ranks(entries, "10.0.0.9")


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.update(version="2.0"), "only \"1.0\""),
    (lambda t: t.update(server_count="2"), "server_count is \"2\" but server_list has 1"),
    (lambda t: t["server_list"][0]["device"][1].update(rank_id="3"), r"device\[1\].rank_id is \"3\", expected \"1\""),
    (lambda t: t["server_list"][0]["device"][1].update(device_id=1), "string of digits"),
    (lambda t: t["server_list"][0]["device"][1].update(device_ip="192.168.100.101"), "appears twice"),
    (lambda t: t["server_list"][0].update(server_id="server-1"), "not an IPv4 address"),
    (lambda t: t["server_list"][0]["device"][0].pop("device_ip"), r"device\[0\]: missing \"device_ip\""),
])
def test_rank_table_validation_names_the_field(tmp_path, edit, message):
    table = json.loads(_two_rank_table(tmp_path).read_text())
    edit(table)
    with pytest.raises(RankTableError, match=message):
        rank_table.validate(table)


def _tool(*args):
    return subprocess.run([sys.executable, str(REPO / "tools" / "make_rank_table.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=60)


def test_make_rank_table_from_hccn_conf_and_validate(tmp_path):
    hccn = tmp_path / "hccn.conf"
    hccn.write_text("address_0=192.168.100.101\nnetmask_0=255.255.255.0\naddress_1=192.168.100.102\n")
    out = tmp_path / "rt.json"
    done = _tool("--hccn-conf", hccn, "--server-id", "10.0.0.1", "--out", out)
    assert done.returncode == 0, done.stderr
    assert [e.device_ip for e in rank_table.validate(json.loads(out.read_text()))] == ["192.168.100.101",
                                                                                      "192.168.100.102"]
    listed = _tool("--validate", out, "--ranks", "--server-id", "10.0.0.1")
    assert listed.returncode == 0 and listed.stdout.split() == ["0", "0", "1", "1"]
    table = json.loads(out.read_text())
    table["server_list"][0]["device"][0]["rank_id"] = "1"
    out.write_text(json.dumps(table))
    bad = _tool("--validate", out)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "rank_id is \"1\", expected \"0\"" in " ".join(bad.stderr.split())
    missing = _tool("--hccn-conf", hccn, "--devices", "0-3", "--out", tmp_path / "x.json")
    assert missing.returncode == 2 and "no address for device(s) [2, 3]" in " ".join(missing.stderr.split())


def test_per_server_tables_merge_into_one_with_ranks_across_servers(tmp_path):
    """Each server writes its own table; the merged one numbers the ranks across servers and lists each server's."""
    for server, ips in (("10.0.0.1", ["192.168.100.101", "192.168.100.102"]),
                        ("10.0.0.2", ["192.168.101.101", "192.168.101.102"])):
        done = _tool("--device-ips", *ips, "--server-id", server, "--out", tmp_path / f"{server}.json")
        assert done.returncode == 0, done.stderr
    merged = tmp_path / "rank_table_4p.json"
    done = _tool("--merge", tmp_path / "10.0.0.1.json", tmp_path / "10.0.0.2.json", "--out", merged)
    assert done.returncode == 0 and "4 rank(s) on 2 server(s)" in done.stdout, done.stderr
    entries = rank_table.validate(rank_table.load(merged))
    assert [(e.rank, e.server_id, e.device_id) for e in entries] == [
        (0, "10.0.0.1", 0), (1, "10.0.0.1", 1), (2, "10.0.0.2", 0), (3, "10.0.0.2", 1)]
    listed = _tool("--validate", merged, "--ranks", "--server-id", "10.0.0.2")
    assert listed.returncode == 0 and listed.stdout.split() == ["2", "0", "3", "1"]
    twice = _tool("--merge", tmp_path / "10.0.0.1.json", tmp_path / "10.0.0.1.json", "--out", tmp_path / "x.json")
    assert twice.returncode == 2 and "server_id 10.0.0.1 appears twice" in twice.stderr


def test_busy_port_is_reported_with_the_fix():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(PortError, match=f"port {port} on 127.0.0.1 .* already in use"):
            check_port_free("127.0.0.1", port, "MS_SCHED_PORT")
    check_port_free("127.0.0.1", port, "MS_SCHED_PORT")  # free again once released


def test_config_value_follows_the_tool_arguments():
    args = ["--config", str(REPO / "configs" / "deeplabv3_s16_r101_vocaug.yaml"), "--checkpoint", "x.ckpt",
            "--set", "runtime.device_target=CPU", "--work-dir", "/tmp/wd"]
    assert config_value("runtime.work_dir", args) == "/tmp/wd"
    assert config_value("distributed.timeout", args) == 120


def test_shell_helpers_answer_without_importing_mindspore():
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "deeplabv3.distributed", "free-port"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert 0 < int(done.stdout) < 65536
    imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time")]
    assert "deeplabv3.distributed.ports" in imported
    assert [name for name in imported if name.split(".")[0] == "mindspore"] == []
