"""`snc train f3d`: guided 3D segmentation from accepted slices, initialised from f2D (Sec. 3.2, 4.1).

Per sample: a training target; 1..6 accepted planes on random axes (1..3 after the learning-rate
restart: the curriculum on the number of mask inputs), each with either its ground-truth mask and an
interior click or a real f2D prediction from robot clicks; a previous 3D mask that is empty or a
corrupted ground truth; the ROI and working grid of the app (grid size varied for robustness). As in
the app, the M_{t-1} input is the shape prior of the accepted planes inside its support and the
previous mask outside it (models.predictor3d.previous_input), so f3D learns to correct the prior.
Loss: NFL on LogitNorm-ed two-class logits + lambda * NFL on the mask attention logits (Eq. 1).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from torch import nn

from ..clicks import next_click
from ..geometry import bounding_box
from ..errors import InputError
from ..models.f2d_v2 import F2DV2, build_f2d
from ..models.f3d import F3D, ResidualF3D, ResidualF3DV2, build_f3d
from ..models.predictor2d import load_f2d
from ..models.predictor3d import roi_inputs, to_grid
from ..models.roi import GRID, roi_for
from ..models.weights import load_state, sha256
from ..session import AcceptedSlice, Plane
from ..shape_prior import BLEND_POWER, FALL_OFF_SCALE
from .common import RESTART_AT, Job, run, setup
from .losses import batch_iou, ce_dice_loss, logit_norm, normalized_focal_loss
from .loop_states import (ITERATIONS, LESION_SHARE, PERFECT_SHARE, REFINE_BUDGET, THICK_MM, THICK_SHARE,
                          load_state_sample, write_states)
from .sampler import TrainingVolumes

GRID_SIZES = (48, 64)  # working grids seen in training (the app uses models.roi.GRID)


def _corrupt_3d(truth, rng):
    """An earlier 3D result: the ground truth shifted, then dilated or eroded (in a box around it,
    which is all that can change)."""
    box = bounding_box(truth, margin=8)
    part = ndimage.shift(truth[box], rng.integers(-4, 5, size=3), order=0)
    iterations = int(rng.integers(1, 4))
    part = ndimage.binary_dilation(part, iterations=iterations) if rng.random() < 0.5 else \
        ndimage.binary_erosion(part, iterations=iterations)
    out = np.zeros_like(truth)
    out[box] = part
    return out


def simulate_accepted(image, truth, spacing, target, f2d, rng, max_planes):
    """Accepted planes as a user of the app would leave them (ground truth or real f2D masks)."""
    accepted = []
    for _ in range(int(rng.integers(1, max_planes + 1))):
        axis = int(rng.choice([a for a in range(3) if len(target.slices[a])]))
        index = int(rng.choice(target.slices[axis]))
        plane = Plane(axis, index)
        truth2d = plane.of(truth)
        mask, clicks = np.zeros_like(truth2d), []
        if f2d is None or rng.random() < 0.5:
            clicks, mask = [next_click(mask, truth2d)], truth2d.copy()
        else:
            for _ in range(int(rng.integers(1, 5))):
                click = next_click(mask, truth2d)
                if click is None:
                    break
                clicks.append(click)
                mask = f2d.predict(plane.of(image), mask, clicks, plane.spacing2d(spacing))
        accepted.append(AcceptedSlice(plane, tuple(clicks), mask))
    return accepted


def make_sample(volumes: TrainingVolumes, f2d, rng, curriculum: bool):
    """(image path [1, 2, *grid], guidance [1, 4, *grid], target [1, 1, *grid], loss weight)."""
    while True:
        target = volumes.pick(rng)
        image, spacing = volumes.images[target.image], volumes.spacings[target.image]
        truth = volumes.labels[target.label] == target.value
        accepted = simulate_accepted(image, truth, spacing, target, f2d, rng, 3 if curriculum else 6)
        previous = _corrupt_3d(truth, rng) if rng.random() < 0.4 else np.zeros_like(truth)
        roi = roi_for(image.shape, spacing, previous, accepted, int(rng.choice(GRID_SIZES)))
        if roi is None:
            continue
        image_path, guidance = roi_inputs(image, spacing, previous, accepted, roi)
        goal = to_grid(torch.from_numpy(truth[roi.box].astype(np.float32))[None, None], roi.grid) > 0.5
        if rng.random() < 0.5:  # flips keep every plane a plane
            dims = [2 + int(d) for d in np.flatnonzero(rng.random(3) < 0.5)]
            image_path, guidance, goal = (t.flip(dims) for t in (image_path, guidance, goal))
        return image_path, guidance, goal.float(), target.weight


def build_model(args) -> nn.Module:
    if getattr(args, "init", None):
        return _fine_tune_start(args)
    extra = {"previous_channel": args.previous_mask} if args.residual else {}
    f2d = None
    if args.init_2d:
        saved = load_state(args.init_2d)
        f2d = build_f2d(saved["config"]["arch"])
        f2d.load_state_dict(saved["state_dict"])
    if isinstance(f2d, F2DV2):  # MobileNetV2 f2D: its f3D is the residual one
        if not args.residual:
            raise InputError(f"{args.init_2d}: f2D v2 weights transfer to f3D v2 only; add --residual")
        return ResidualF3DV2(f2d.width, f2d.refine_width, not args.no_mask_attention,
                             None if args.no_transfer else f2d, **extra)
    kind = ResidualF3D if args.residual else F3D
    if args.no_transfer or f2d is None:
        return kind(args.width, mask_attention=not args.no_mask_attention, **extra)
    return kind(f2d.image_conv.out_channels, not args.no_mask_attention, f2d, **extra)


def _fine_tune_start(args) -> nn.Module:
    """The trained f3D v2 of `--init`, to train on. It must take the inputs this run gives it and
    have learned on the same f2D's masks, or it would be corrected towards another session."""
    if not args.residual:
        raise InputError("--init (fine-tuning a trained f3D) needs --residual")
    saved = load_state(args.init)
    config = saved["config"]
    arch = config.get("arch", {})
    if not arch.get("residual", False):
        raise InputError(f"{args.init}: not f3D v2 weights (its config has no residual)")
    if bool(arch.get("previous_channel", False)) != bool(args.previous_mask):
        raise InputError(f"{args.init}: trained {'with' if arch.get('previous_channel') else 'without'} "
                         "the previous-mask channel; pass --previous-mask to match it or leave it out")
    if arch.get("mask_attention", True) == bool(args.no_mask_attention):
        raise InputError(f"{args.init}: its mask attention does not match --no-mask-attention")
    if config.get("f2d_sha256") != sha256(args.init_2d):
        raise InputError(f"{args.init}: trained on another f2D's masks than {args.init_2d}")
    model = build_f3d(arch)
    model.load_state_dict(saved["state_dict"])
    return model


def residual_step(states, args, device, streams):
    """f3D v2's training step: loop states (`loop_states`), flipped at random; after the restart only
    states with 1..3 accepted slices (the curriculum of Sec. 4.1)."""
    by_slices = {}
    for path in states:
        by_slices.setdefault(int(path.stem.rsplit("-", 1)[1]), []).append(path)

    def step(net, optimizer, progress):
        rng = streams["rng"]
        pool = [p for k, paths in by_slices.items() if progress < RESTART_AT or k <= 3 for p in paths]
        optimizer.zero_grad(set_to_none=True)
        losses, ious = [], []
        for _ in range(args.batch):
            tensors = load_state_sample(pool[rng.integers(len(pool))], args.previous_mask)[:4]
            dims = [2 + int(d) for d in np.flatnonzero(rng.random(3) < 0.5)]
            image_path, guidance, guess, goal = (t.flip(dims).to(device) for t in tensors)
            logits, attention = net(image_path, guidance, guess)
            if args.loss == "ce-dice":
                loss = ce_dice_loss(logits, goal)
                if attention is not None:
                    loss = loss + args.attention_weight * ce_dice_loss(torch.cat([torch.zeros_like(attention), attention], 1), goal)
            else:
                loss = normalized_focal_loss(logit_norm(logits, args.tau), goal)
                if attention is not None:
                    loss = loss + args.attention_weight * normalized_focal_loss(attention, goal)
            (loss / args.batch).backward()
            losses.append(loss.item())
            ious.append(batch_iou(logits.detach(), goal))
        optimizer.step()
        return float(np.mean(losses)), float(np.mean(ious)), args.batch

    return step


def train(args) -> Path:
    device, ddp = setup(args)
    seed = args.seed + 1000 * ddp.rank
    streams = {"rng": np.random.default_rng(seed)}
    if args.residual:
        if not args.init_2d:
            raise InputError("f3D v2 (--residual) needs --init-2d: its training states come from f2D's clicks")
        states = write_states(args.manifest, Path(args.out) / "states", args.loop_runs, args.state_workers,
                              args.seed, args.init_2d)
        engine_states = write_states(args.manifest, Path(args.out) / "states-engine", args.engine_runs,
                                     args.state_workers, args.seed, args.init_2d, "engine") if args.engine_runs else []
        refine_states = write_states(args.manifest, Path(args.out) / "states-refine", args.refine_runs,
                                     args.state_workers, args.seed, args.init_2d, "refine") if args.refine_runs else []
        states = states + engine_states + refine_states
        if not states:
            raise InputError(f"{args.manifest}: the robot runs gave no training state")
        volumes = None
    else:
        volumes = TrainingVolumes(args.manifest)
        f2d = load_f2d(args.init_2d, "cpu") if args.init_2d else None  # the real 2D masks of the simulation
    model = build_model(args)
    if isinstance(model, F3D) and args.init_2d and not args.no_transfer:
        args.width = model.body.image_conv.out_channels

    def volume_step(net, optimizer, progress):
        curriculum = progress >= RESTART_AT
        optimizer.zero_grad(set_to_none=True)
        losses, ious = [], []
        for _ in range(args.batch):  # grids differ in shape: accumulate gradients sample by sample
            image_path, guidance, goal, weight = make_sample(volumes, f2d, streams["rng"], curriculum)
            goal = goal.to(device)
            logits, attention = net(image_path.to(device), guidance.to(device))
            loss = normalized_focal_loss(logit_norm(logits, args.tau), goal)
            if attention is not None:
                loss = loss + args.attention_weight * normalized_focal_loss(attention, goal)
            (loss * weight / args.batch).backward()
            losses.append(loss.item())
            ious.append(batch_iou(logits.detach(), goal))
        optimizer.step()
        return float(np.mean(losses)), float(np.mean(ious)), args.batch

    step = residual_step(states, args, device, streams) if args.residual else volume_step

    def reseed(at_step):
        streams["rng"] = np.random.default_rng([seed, at_step])

    arch = {"width": args.width, "mask_attention": not args.no_mask_attention}
    if isinstance(model, ResidualF3DV2):
        arch = dict(model.arch)
    config = {"arch": arch, "grid": GRID, "tau": args.tau, "prior_power": BLEND_POWER,
              "prior_fall_off": FALL_OFF_SCALE}
    if args.residual:
        arch["residual"] = True
        arch["previous_channel"] = args.previous_mask
        config["f2d_sha256"] = sha256(args.init_2d)  # the f2D whose masks it learned to correct
        # how its confidence is read: the softmax of its logits when trained without LogitNorm
        config["confidence"] = "softmax" if args.loss == "ce-dice" else "logit-norm"
    card = {
        "architecture": f"F3D(width={args.width}, mask_attention={not args.no_mask_attention}): f2D with "
                        "Mean-ACS convolutions, guidance path, mask attention, two-class "
                        + ("head" if args.residual and args.loss == "ce-dice" else "LogitNorm head"),
        "transfer": None if (args.no_transfer or not args.init_2d) else str(args.init_2d),
        "init": {"weights": str(args.init), "sha256": sha256(args.init)} if getattr(args, "init", None) else None,
        "data": {"manifest": str(args.manifest),
                 "split": "train.json of `snc data fetch` (validation subjects ts-ct and colin27 excluded)"},
        "recipe": {"loss": (f"CE + soft Dice, + {args.attention_weight} * the same on the attention logits"
                            if args.residual and args.loss == "ce-dice" else
                            f"NFL(LogitNorm tau={args.tau}) + {args.attention_weight} * NFL(attention)"),
                   "optimizer": "AdamW", "lr": args.lr, "batch": args.batch, "seed": args.seed},
    }
    if args.residual:
        card["architecture"] = ("f3D v2 (ResidualF3D): " + card["architecture"] + "; output = the guess's "
                                "logits (signed distance in grid voxels, clipped) + a residual whose head "
                                "starts at zero" + ("" if not args.previous_mask else "; its image path also "
                                "sees the session's previous mask (zero-initialised channel)"))
        if isinstance(model, ResidualF3DV2):
            card["architecture"] = (
                f"f3D v2 (ResidualF3DV2, {model.arch}): f2D v2 (MobileNetV2 encoder, FPN decoder) with "
                "Mean-ACS convolutions (grouped for the depthwise ones), its frozen BatchNorm as per-channel "
                "affine maps, the guess in the guidance conv, mask attention at stride 4, a two-class head; "
                "output = the guess's logits + a residual whose head starts at zero")
        card["data"]["loop_states"] = {
            "files": len(states), "robot_runs": args.loop_runs,
            "engine_runs": args.engine_runs, "engine_files": len(engine_states),
            "refine_runs": args.refine_runs, "refine_files": len(refine_states),
            "how": "robot runs of f2d-prior's loop (f2D clicks, 1-5 per slice, else perfect slices in "
                   f"{PERFECT_SHARE:.0%} of runs; ShapePrior3D; CrossRecommender), a state after each of "
                   f"{ITERATIONS} accepts; {THICK_SHARE:.0%} of targets in slabs of {THICK_MM[0]}-{THICK_MM[1]} mm; "
                   "engine runs on the data engine's volumes (training.synth: a label-synthesised image of "
                   f"a training label map, or a painted lesion in {LESION_SHARE:.0%} of them); refine runs "
                   "start from a degraded truth (loop_states.refine_start) with a click budget of "
                   f"{REFINE_BUDGET[0]}-{REFINE_BUDGET[1] - 1}, first plane the largest error",
            "guess": "classic.ShapePrior3D (shape prior + intensity evidence), as in the app"}
        card["recipe"]["schedule"] = (f"cosine, warm restart at {RESTART_AT:.2f} of the run; states with "
                                      "1..6 accepted slices, 1..3 after it; random flips")
    else:
        card["data"]["targets"] = len(volumes.targets)
        card["recipe"].update({
            "schedule": f"cosine, warm restart at {RESTART_AT:.2f} of the run; 1..6 accepted planes, "
                        "1..3 after it", "grids": list(GRID_SIZES),
            "previous_input": "shape prior of the accepted planes inside its support, previous "
                              "mask (40% corrupted ground truth, else empty) outside"})
    job = Job("f3d", model, config, step, reseed, card)
    return run(args, job, device, ddp)
