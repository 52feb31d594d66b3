"""What every training command shares: the time-based cosine schedule with one warm restart,
distributed data parallel through torchrun, checkpoints with resume, and progress."""
from __future__ import annotations

import math
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist

RESTART_AT = 1 / 3  # the paper restarts at 30 of 90 (f2D) and 40 of 120 (f3D) epochs


def learning_rate(base: float, progress: float) -> float:
    """Cosine annealing with a warm restart at RESTART_AT of the run (AdamWR / SGDR)."""
    if progress < RESTART_AT:
        phase = progress / RESTART_AT
    else:
        phase = (progress - RESTART_AT) / (1 - RESTART_AT)
    return base * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(phase, 1.0))))


class Distributed:
    """torchrun's environment when present (gloo on CPU, nccl on CUDA), a single process otherwise."""

    def __init__(self, device: torch.device):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def wrap(self, model):
        if self.world > 1:
            return torch.nn.parallel.DistributedDataParallel(model)
        return model

    def agree(self, progress: float) -> float:
        """Every rank uses the furthest progress of all, so all stop at the same step."""
        if self.world == 1:
            return progress
        value = torch.tensor([progress], dtype=torch.float64)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return float(value)

    def close(self):
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


class Clock:
    """Progress in [0, 1] from the minutes budget (and/or a step budget), kept across resumes."""

    def __init__(self, minutes: float | None, steps: int | None, elapsed: float = 0.0):
        if not minutes and not steps:
            raise ValueError("give --minutes or --steps")
        self.minutes, self.steps = minutes, steps
        self.start = time.monotonic() - elapsed

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def progress(self, step: int) -> float:
        parts = []
        if self.minutes:
            parts.append(self.elapsed / (60 * self.minutes))
        if self.steps:
            parts.append(step / self.steps)
        return max(parts)


def save_checkpoint(path: Path, **state):
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"
