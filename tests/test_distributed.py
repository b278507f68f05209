"""Data-parallel training: two CPU processes joined by gloo, as torchrun would start them."""

import os
import socket
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file
from test_train import TINY

from snakeaudio.train import TrainConfig, Trainer

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()), reason="torch.distributed with the gloo backend is unavailable"
)


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def replica(rank: int, folder, ports: list[int]) -> None:
    """One torchrun rank: one step in ``folder/run`` (resumed, an init-from folder given too)
    and ``folder/fresh`` (initialised from it), then a run that fails to start and one that
    fails in fit(); writes what it saw to ``folder/rank{rank}.pt``."""
    os.environ.update(MASTER_ADDR="127.0.0.1", WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    config, result = TrainConfig.from_dict(TINY), {}
    for name, port in zip(("run", "fresh"), ports):
        os.environ["MASTER_PORT"] = str(port)
        trainer = Trainer(config, folder / name, device="cpu", init_from=folder / "base")
        started = {"step": trainer.step, "generator": {k: v.clone() for k, v in trainer.generator.state_dict().items()}}
        trainer.fit(trainer.step + 1)
        after = {"step": trainer.step, "generator": trainer.generator.state_dict(), "joined": dist.is_initialized()}
        result[name] = {"started": started, **after}
    os.environ["MASTER_PORT"] = str(ports[2])
    with pytest.raises(FileNotFoundError, match="nowhere"):
        Trainer(config, folder / "unstarted", device="cpu", init_from=folder / "nowhere")
    result["joined_after_failed_start"] = dist.is_initialized()
    os.environ["MASTER_PORT"] = str(ports[3])
    failing = Trainer(config, folder / "failing", device="cpu")
    failing.train_step = lambda batch: 1 / 0
    with pytest.raises(ZeroDivisionError):
        failing.fit()
    result["joined_after_failed_fit"] = dist.is_initialized()
    torch.save(result, folder / f"rank{rank}.pt")


def test_replicas_start_alike_with_init_from(tmp_path):
    """Every rank resumes the run's checkpoint and none initialises from --init-from; every
    rank of a fresh run initialises from it. After a step the replicas' generators are equal,
    and fit() has left the process group, also on error."""
    other_seed = {**TINY, "training": {**TINY["training"], "seed": 99}}
    Trainer(TrainConfig.from_dict(other_seed), tmp_path / "base").save_checkpoint()  # another generator to start from
    run = Trainer(TrainConfig.from_dict(TINY), tmp_path / "run")
    run.train_step(torch.stack([run.train_set[i] for i in range(2)]))
    checkpoint = load_file(str(run.save_checkpoint() / "generator.safetensors"))

    replicas = mp.spawn(replica, args=(tmp_path, free_ports(4)), nprocs=2, join=False)
    deadline = time.monotonic() + 120
    while not replicas.join(timeout=1):
        if time.monotonic() > deadline:
            for process in replicas.processes:
                process.kill()
            pytest.fail("the two ranks did not finish within 120 s")

    results = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=True) for rank in range(2)]
    for result in results:
        resumed, fresh = result["run"], result["fresh"]
        assert (resumed["started"]["step"], resumed["step"], fresh["started"]["step"], fresh["step"]) == (1, 2, 0, 1)
        for key, value in checkpoint.items():  # resumed, not initialised from the other generator
            assert torch.equal(resumed["started"]["generator"][key], value), key
        assert not any((resumed["joined"], fresh["joined"], result["joined_after_failed_start"], result["joined_after_failed_fit"]))
    for name in ("run", "fresh"):
        first, second = (result[name]["generator"] for result in results)
        assert any(not torch.equal(first[k], v) for k, v in results[0][name]["started"]["generator"].items())  # it trained
        for key, value in first.items():
            assert torch.equal(value, second[key]), (name, key)
