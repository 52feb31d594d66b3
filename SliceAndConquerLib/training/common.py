"""What every training command shares: the time-based cosine schedule with one warm restart,
distributed data parallel through torchrun, checkpoints with resume, and progress."""
from __future__ import annotations

import json
import math
import os
import platform
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from ..models.weights import pick_device, save_weights, write_card

RESTART_AT = 1 / 3  # the paper restarts at 30 of 90 (f2D) and 40 of 120 (f3D) epochs
CHECKPOINT_EVERY_S = 120


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
            dist.barrier()  # rank 0 may still be writing weights: nobody tears the group down under it
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


def setup(args):
    """(device, Distributed) with the thread count applied; every rank seeds torch alike so that
    initial weights agree."""
    device = pick_device(args.device)
    if device.type == "cpu" and args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    return device, Distributed(device)


@dataclass
class Job:
    """What differs between the training commands; `run` does the rest."""
    name: str                        # "f2d" -> OUT/f2d.pt and OUT/f2d.json
    model: torch.nn.Module
    config: dict                     # stored with the weights (architecture arguments)
    step: Callable                   # (net, optimizer, progress) -> (loss, IoU, samples)
    reseed: Callable                 # (step) -> None: fresh random streams after a resume
    card: dict                       # model card fields: data, recipe details
    param_groups: list | None = None  # optimizer groups, each with an "lr_scale" on the schedule's lr


def run(args, job: Job, device, ddp: Distributed) -> Path:
    """The loop: time-based schedule, progress bar, checkpoints, resume, weights + model card."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = job.model.to(device)
    groups = job.param_groups or [{"params": list(model.parameters()), "lr_scale": 1.0}]
    optimizer = torch.optim.AdamW([dict(g, lr=args.lr * g["lr_scale"]) for g in groups], lr=args.lr,
                                  weight_decay=1e-4)
    step, elapsed, history = 0, 0.0, []
    checkpoint = out / "checkpoint.pt"
    if args.resume and checkpoint.exists():
        state = load_checkpoint(checkpoint)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, elapsed, history = state["step"], state["elapsed"], state["history"]
        job.reseed(step)
        if ddp.main:
            print(f"resuming {checkpoint} at step {step} ({elapsed / 60:.1f} min done)", file=sys.stderr)
    net = ddp.wrap(model)
    clock = Clock(args.minutes, args.steps, elapsed)
    bar = tqdm(total=100, disable=not ddp.main, desc=f"train {job.name}", bar_format=(
        "{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}"))
    last_save, recent = time.monotonic(), []

    def save():
        save_checkpoint(checkpoint, model=model.state_dict(), optimizer=optimizer.state_dict(),
                        step=step, elapsed=clock.elapsed, history=history)

    while True:
        progress = ddp.agree(clock.progress(step))
        if progress >= 1.0:
            break
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(args.lr, progress) * group.get("lr_scale", 1.0)
        started = time.perf_counter()
        loss, iou, samples = job.step(net, optimizer, progress)
        recent.append((loss, iou, samples / (time.perf_counter() - started)))
        step += 1
        if not ddp.main:
            continue
        bar.n = int(100 * progress)
        if step % 10 == 0:
            loss_m, iou_m, speed = np.mean(recent, axis=0)
            history.append({"step": step, "minutes": round(clock.elapsed / 60, 2), "loss": round(loss_m, 4),
                            "iou": round(iou_m, 4), "lr": learning_rate(args.lr, progress)})
            bar.set_postfix_str(f"step {step} loss {loss_m:.3f} IoU {iou_m:.3f} {speed * ddp.world:.1f} samples/s")
            recent = []
        bar.refresh()
        if time.monotonic() - last_save > CHECKPOINT_EVERY_S:
            save()
            last_save = time.monotonic()
    bar.close()
    weights = out / f"{job.name}.pt"
    if ddp.main:
        save()
        save_weights(weights, model, job.config)
        (out / "history.json").write_text(json.dumps(history) + "\n")
        card = {"model": job.name, **job.card,
                "parameters": sum(p.numel() for p in model.parameters()),
                "command": "snc " + " ".join(shlex.quote(str(a)) for a in getattr(args, "argv", sys.argv[1:])),
                "minutes": round(clock.elapsed / 60, 1), "steps": step, "processes": ddp.world,
                "hardware": hardware(device),
                "software": f"torch {torch.__version__}, Python {platform.python_version()}",
                "final_train": history[-1] if history else None}
        write_card(weights, card)
        print(f"wrote {weights} and {weights.with_suffix('.json')}", file=sys.stderr)
    ddp.close()
    return weights
