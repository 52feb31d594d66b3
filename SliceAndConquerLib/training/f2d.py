"""`snc train f2d`: RITM-style iterative training of the click model on 2D slices of all three axes.

Per batch: a first click at the target's most interior point (jittered), in some samples a few random
extra clicks, in some a corrupted ground truth as the previous mask (the slice of an earlier 3D result);
then 0..3 rounds, without gradient, of predicting and adding the robot's click at the largest error
with the prediction fed back as the previous mask; finally the step with gradient. About half the
samples are single-click. After the learning-rate restart the curriculum lowers the number of
simulated clicks (Sec. 4.1).
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from scipy import ndimage

from ..clicks import Click, disk_maps, next_click
from ..errors import InputError
from ..models.f2d import INPUT_SIZE
from ..models.f2d_v2 import build_f2d, init_from_imagenet
from ..models.weights import load_state, sha256
from .common import RESTART_AT, Job, run, setup
from .losses import batch_iou, normalized_focal_loss
from .sampler import ENGINE_MIX, SliceSampler, TrainingVolumes, parse_mix


def _random_clicks(mask, rng, count):
    """Random extra clicks: positive inside the target, negative in a band around it."""
    clicks = []
    inside = np.argwhere(ndimage.binary_erosion(mask, iterations=2) if mask.sum() > 50 else mask)
    band = np.argwhere(ndimage.binary_dilation(mask, iterations=15) & ~ndimage.binary_dilation(mask, iterations=3))
    for _ in range(count):
        pool, positive = (inside, True) if rng.random() < 0.6 or not len(band) else (band, False)
        if len(pool):
            row, col = pool[rng.integers(len(pool))]
            clicks.append(Click(int(row), int(col), positive))
    return clicks


def _corrupt(mask, rng):
    """A plausible earlier 3D result's slice: shifted, eroded or dilated ground truth."""
    out = ndimage.shift(mask, rng.integers(-6, 7, size=2), order=0)
    iterations = int(rng.integers(1, 6))
    out = ndimage.binary_dilation(out, iterations=iterations) if rng.random() < 0.5 else \
        ndimage.binary_erosion(out, iterations=iterations)
    return out


def _first_clicks(mask, previous, rng, extra_prob):
    if previous.any():
        click = next_click(previous, mask)
        clicks = [click] if click else []
    else:
        interior = next_click(np.zeros_like(mask), mask)
        row, col = interior.row + rng.integers(-2, 3), interior.col + rng.integers(-2, 3)
        if not mask[np.clip(row, 0, mask.shape[0] - 1), np.clip(col, 0, mask.shape[1] - 1)]:
            row, col = interior.row, interior.col
        clicks = [Click(int(row), int(col), True)]
    if rng.random() < extra_prob:
        clicks += _random_clicks(mask, rng, int(rng.integers(1, 4)))
    return clicks


def _prior_like(mask, rng):
    """What the shape prior offers on a slice far from the accepted planes (a start mask of DSC
    ~0.6 in the loop, much worse than `_corrupt`): the ground truth rotated, rescaled per axis
    (0.75-1.25) about its centre and shifted, eroded or dilated, and at times cut by a line."""
    rows, cols = np.nonzero(mask)
    if not len(rows):
        return mask.copy()
    centre = np.array([cols.mean(), rows.mean()])
    angle = np.deg2rad(rng.uniform(-20, 20))
    rotate = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    linear = rotate @ np.diag(rng.uniform(0.75, 1.25, size=2))
    offset = centre + rng.uniform(-0.1, 0.1, size=2) * mask.shape[0] - linear @ centre
    out = cv2.warpAffine(mask.astype(np.uint8), np.hstack([linear, offset[:, None]]), mask.shape[::-1],
                         flags=cv2.INTER_NEAREST).astype(bool)
    iterations = int(rng.integers(0, 6))
    if iterations:
        out = ndimage.binary_dilation(out, iterations=iterations) if rng.random() < 0.5 else \
            ndimage.binary_erosion(out, iterations=iterations)
    if rng.random() < 0.3:  # a lobe the interpolation missed
        direction = rng.normal(size=2)
        direction /= np.linalg.norm(direction)
        yy, xx = np.mgrid[: mask.shape[0], : mask.shape[1]]
        reach = rng.uniform(0.2, 0.8) * np.sqrt(mask.sum() / np.pi)  # in radii of the target's area
        out &= (xx - centre[0]) * direction[0] + (yy - centre[1]) * direction[1] < reach
    return out


def make_batch(samples, rng, curriculum: bool, loop_starts: float = 0.0):
    """Tensors for one batch plus each sample's clicks (lists) and ground truth (numpy). A fifth of
    the samples start from a mildly corrupted ground truth, `loop_starts` of them from a prior-like
    one (see `_prior_like`), the rest from nothing."""
    extra_prob = 0.15 if curriculum else 0.3
    images = torch.from_numpy(np.stack([s[0] for s in samples]))[:, None]
    truths = [s[1] for s in samples]
    previous = []
    for truth in truths:
        draw = rng.random()
        previous.append(_corrupt(truth, rng) if draw < 0.2 else
                        _prior_like(truth, rng) if draw < 0.2 + loop_starts else np.zeros_like(truth))
    clicks = [_first_clicks(t, p, rng, extra_prob) for t, p in zip(truths, previous)]
    weights = torch.tensor([s[2] for s in samples], dtype=torch.float32)
    return images, truths, previous, clicks, weights


def _tensors(previous, clicks):
    prev = torch.from_numpy(np.stack(previous).astype(np.float32))[:, None]
    maps = torch.from_numpy(np.stack([disk_maps(c, (INPUT_SIZE, INPUT_SIZE)) for c in clicks]))
    return prev, maps


def train_step(model, optimizer, images, truths, previous, clicks, weights, rng, max_rounds, device):
    rounds = 0 if max_rounds == 0 or rng.random() < 0.5 else int(rng.integers(1, max_rounds + 1))
    with torch.no_grad():
        for _ in range(rounds):
            prev, maps = _tensors(previous, clicks)
            predictions = (model(images.to(device), prev.to(device), maps.to(device)) > 0).cpu().numpy()[:, 0]
            for i, (pred, truth) in enumerate(zip(predictions, truths)):
                click = next_click(pred, truth)
                previous[i] = pred
                if click is not None:
                    clicks[i] = clicks[i] + [click]
    prev, maps = _tensors(previous, clicks)
    target = torch.from_numpy(np.stack(truths).astype(np.float32))[:, None].to(device)
    logits = model(images.to(device), prev.to(device), maps.to(device))
    loss = normalized_focal_loss(logits, target, weight=weights.to(device))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item(), batch_iou(logits.detach(), target)


class WorkerBatches(torch.utils.data.IterableDataset):
    """Endless batches made by DataLoader worker processes, so that slice sampling and augmentation
    (CPU) keep up with a GPU. Each worker draws from its own random streams, seeded by
    (seed, step of the (re)start, worker); `curriculum` is a shared flag the training loop sets."""

    def __init__(self, volumes: TrainingVolumes, batch: int, seed: int, start_step: int, curriculum,
                 loop_starts: float = 0.0, mix: dict | None = None):
        self.volumes, self.batch, self.seed, self.start_step = volumes, batch, seed, start_step
        self.curriculum, self.loop_starts, self.mix = curriculum, loop_starts, mix

    def __iter__(self):
        worker = torch.utils.data.get_worker_info()
        streams = [self.seed, self.start_step, worker.id if worker else 0]
        sampler = SliceSampler(None, seed=streams + [1], volumes=self.volumes, mix=self.mix)
        rng = np.random.default_rng(streams)
        while True:
            yield make_batch([sampler.sample() for _ in range(self.batch)], rng, bool(self.curriculum.value),
                             self.loop_starts)


def _as_is(batch):
    return batch


def _one_thread(_worker):
    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def train(args) -> Path:
    if not 0.0 <= args.loop_starts <= 0.8:  # 0.2 of the samples already start from a mild corruption
        raise InputError(f"--loop-starts {args.loop_starts} is outside 0..0.8")
    arch_name = getattr(args, "arch", "v1")
    imagenet = None
    if arch_name == "v2" and not args.init and not getattr(args, "no_pretrained", False):
        from ..models.pretrained import load_pretrained

        imagenet = load_pretrained("mobilenet_v2")  # before the volumes: a missing file fails fast
    device, ddp = setup(args)
    seed = args.seed + 1000 * ddp.rank
    streams = {"clicks": np.random.default_rng(seed), "start": 0}
    oversample = dict(args.oversample or [])
    volumes = TrainingVolumes(args.manifest, oversample)
    mix = parse_mix(args.mix) if getattr(args, "mix", None) else (ENGINE_MIX if getattr(args, "engine", False)
                                                                  else None)
    sampler = SliceSampler(None, seed=seed, volumes=volumes, mix=mix)

    def next_batch(curriculum):
        if not args.workers:
            return make_batch([sampler.sample() for _ in range(args.batch)], streams["clicks"], curriculum,
                              args.loop_starts)
        if "loader" not in streams:  # started at the first step, after a resume has set the start step
            # Workers are spawned, not forked: a child forked after OpenCV's thread pool ran can hang.
            spawn = torch.multiprocessing.get_context("spawn")
            streams["curriculum"] = spawn.Value("b", curriculum)
            batches = WorkerBatches(volumes, args.batch, seed, streams["start"], streams["curriculum"],
                                    args.loop_starts, mix)
            streams["loader"] = iter(torch.utils.data.DataLoader(
                batches, batch_size=None, num_workers=args.workers, collate_fn=_as_is,
                worker_init_fn=_one_thread, prefetch_factor=4, multiprocessing_context=spawn))
        streams["curriculum"].value = curriculum
        return next(streams["loader"])

    def step(net, optimizer, progress):
        curriculum = progress >= RESTART_AT
        batch = next_batch(curriculum)
        loss, iou = train_step(net, optimizer, *batch, streams["clicks"], 2 if curriculum else 3, device)
        return loss, iou, args.batch

    def reseed(at_step):
        streams["clicks"] = np.random.default_rng([seed, at_step])
        streams["start"] = at_step
        sampler.rng = np.random.default_rng([seed, at_step, 1])

    arch = {"width": args.width} if arch_name == "v1" else {"name": "v2"}
    start = None
    if args.init:  # fine-tuning: the trained network's own architecture and weights
        saved = load_state(args.init)
        arch = saved["config"].get("arch", arch)
        model = build_f2d(arch)
        model.load_state_dict(saved["state_dict"])
        start = {"weights": str(args.init), "sha256": sha256(args.init)}
    else:
        model = build_f2d(arch)
        if imagenet is not None:
            from ..models.pretrained import PRETRAINED, pretrained_path

            init_from_imagenet(model, imagenet)
            item = PRETRAINED["mobilenet_v2"]
            start = {"encoder": f"ImageNet MobileNetV2 ({item.filename} from {item.requirement})",
                     "sha256": item.sha256, "path": str(pretrained_path())}
    v2 = arch.get("name") == "v2"
    if v2:
        from ..models.f2d_v2 import F2DV2

        backbone = set(model.encoder.parameters())
        encoder_lr = args.encoder_lr if args.encoder_lr is not None else (0.1 if start else 1.0)
        param_groups = [{"params": [p for p in model.parameters() if p in backbone], "lr_scale": encoder_lr},
                        {"params": [p for p in model.parameters() if p not in backbone], "lr_scale": 1.0}]
        description = (f"F2DV2(width={F2DV2().laterals[0].out_channels}): MobileNetV2 encoder (frozen BN), "
                       f"Conv1S guidance, FPN decoder, 1/2-resolution refinement; input {INPUT_SIZE}x{INPUT_SIZE}")
    else:
        param_groups, encoder_lr = None, None
        description = f"F2D(width={arch['width']}), input {INPUT_SIZE}x{INPUT_SIZE}"
    first_click = getattr(args, "first_click", None) or "fixed"  # the rule stored with the weights
    job = Job("f2d", model, {"arch": arch, "input_size": INPUT_SIZE, "first_click": first_click}, step, reseed, {
        "architecture": description,
        "first_click": first_click,
        "init": start,
        "data": {"manifest": str(args.manifest), "targets": len(sampler.targets),
                 "split": "train.json of `snc data fetch` (validation subjects ts-ct and colin27 excluded)",
                 "synthetic_fraction": round(sampler.synthetic_fraction, 4),
                 "mix": {k: round(v, 4) for k, v in sampler.mix.items()},
                 "engine": "training/synth.py: labels = SynthSeg-style images from the training label maps, "
                           "lesion = blobs 5-50 mm painted into real training slices, thick = 2-8 mm slab "
                           "reconstructions of real training volumes, blobs = random shapes"
                           if mix else None},
        "recipe": {"loss": "normalized focal loss", "optimizer": "AdamW", "lr": args.lr,
                   "schedule": f"cosine, warm restart at {RESTART_AT:.2f} of the run, curriculum after it",
                   "batch": args.batch, "seed": args.seed, "data_workers": args.workers,
                   "iterative_training": "0..3 simulated error clicks (0..2 after the restart), prediction fed back",
                   "previous_mask": f"0.2 mildly corrupted ground truth, {args.loop_starts} prior-like, "
                                    "else empty",
                   "oversample": oversample, "encoder_lr_scale": encoder_lr},
    }, param_groups=param_groups)
    return run(args, job, device, ddp)
