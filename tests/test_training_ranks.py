"""Training on two processes takes the steps one process takes on the whole batch.

A real gloo process group of two spawned processes (its rendezvous in a file, its sockets on
the loopback interface), each running `run_training` on a tiny randomly initialised Llama;
their LoRA weights must equal each other's and those of a run on one process. A loss or a
gradient that stayed on its own process (as when DistributedDataParallel is bypassed) makes
them differ.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("peft", reason="the training extra is not installed")
pytestmark = pytest.mark.slow

PREFIX = tuple(range(3, 15))


def _examples():
    from segpilot.training.examples import Example

    out = []
    for i in range(24):
        body = tuple(20 + (i * 7 + j) % 30 for j in range(2 + i % 5))
        target = tuple(50 + (i + j) % 10 for j in range(1 + i % 4))
        out.append(Example((*PREFIX, *body, *target), len(PREFIX) + len(body), str(i)))
    return out


def _train(output: Path) -> dict:
    import torch
    from peft import get_peft_model_state_dict
    from tiny_llama import tiny_llama

    from segpilot.engine.settings import TrainingSettings
    from segpilot.training.trainer import lora_model, run_training

    torch.manual_seed(0)
    settings = TrainingSettings(dropout=0.0, rank=4, batch_tokens=120, max_steps=5, lr=0.02)
    model = lora_model(tiny_llama(), settings)
    run_training(
        model,
        _examples(),
        [],
        settings,
        output,
        pad_id=0,
        device="cpu",
        meta={},
        progress_bar=False,
    )
    return {k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()}


def _rank(rank: int, world: int, store: str, output: str, results: str) -> None:
    import torch
    import torch.distributed as dist

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), GLOO_SOCKET_IFNAME="lo")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        torch.save(_train(Path(output)), Path(results) / f"{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_processes_train_as_one_does(tmp_path: Path, monkeypatch) -> None:
    import torch
    import torch.multiprocessing as mp

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    torch.set_num_threads(1)
    alone = _train(tmp_path / "alone")
    output = tmp_path / "two"
    mp.spawn(_rank, args=(2, str(tmp_path / "store"), str(output), str(tmp_path)), nprocs=2)
    first, second = (torch.load(tmp_path / f"{r}.pt") for r in (0, 1))
    assert alone.keys() == first.keys() == second.keys()
    moved = [k for k in alone if "lora_B" in k and float(alone[k].abs().max()) > 0]
    assert moved  # the steps did train
    for key in alone:
        torch.testing.assert_close(first[key], second[key], rtol=0, atol=0)
        torch.testing.assert_close(first[key], alone[key], rtol=1e-4, atol=1e-6)
    assert (output / "adapter_config.json").is_file()  # rank 0 wrote the adapter
    assert sorted(p.name for p in (output / "checkpoints").iterdir())[-1] == "step-0000005"
