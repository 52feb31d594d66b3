"""States of the loop for f3D v2's training (issue 18, item 2): what the app's 3D step sees.

A state is taken after each accept of a robot run (Sec. 4.4) on a TRAINING target: the robot clicks
f2D until the slice is good or its click allowance (1-5, drawn per run) is spent, accepts, and moves
to the plane f2d-prior's recommender picks (the cross, then the farthest slice; on a thick scan its
slice axis only). A share of runs accepts perfect slices instead. Each state holds exactly the inputs
`predictor3d.residual_inputs` builds in the app (the guess of `classic.ShapePrior3D` included) and the
ground truth on the same working grid. A share of targets is reconstructed in thick slabs first
(`data.thick`), so f3D meets thick-slice scans as the loop does.

States come from one of three sources: "real" (training volumes as they are), "engine" (the f2D data
engine's volumes, `training.synth`: a SynthSeg-style image of a training label map, or a lesion painted
into a training volume, `LESION_SHARE` of engine runs), so that the residual meets more appearances
and more small targets than the training subjects hold, or "refine" (training volumes as they are, the
session starting from an existing mask that `refine_start` degrades from the truth, as in the
refinement protocol of Sec. 5.3), so that f3D learns to keep what an existing result has right.

States are written once per training run to a folder (one .npz each), by worker processes, and reused
by `--resume` and by later runs with the same settings.
"""
from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from ..classic import CrossRecommender, ShapePrior3D
from ..data.thick import slab_grid, slab_mean
from ..errors import InputError
from ..evaluation.robot import largest_error_plane, run_robot
from ..geometry import bounding_box, punch_holes
from ..models.predictor3d import residual_inputs, to_grid
from ..models.roi import GRID
from ..session import Session

ITERATIONS = 6          # accepts per run: states with 1..6 accepted slices
PERFECT_SHARE = 0.2     # runs whose robot accepts ground-truth slices
THICK_SHARE = 0.3       # targets reconstructed in slabs of THICK_MM first
THICK_MM = (3.0, 7.0)
CROP_MARGIN_MM = 60.0   # the volume around the target that a run works on (the ROI never reaches it)
GRID_SIZES = (48, 64)   # working grids of the states: the app's (models.roi.GRID) and a cheaper one
LESION_SHARE = 0.5      # engine runs on a painted lesion (the others: a label-synthesised volume)
SOURCES = ("real", "engine", "refine")
# refine runs: the existing mask (the training generator's own ranges, wider than the protocol's
# `evaluation.harness.degrade`) and the click budget of the run
REFINE_SHIFT = 3          # voxels per axis, at most
REFINE_MORPH = (0, 3)     # erosion or dilation steps
REFINE_HOLES = (0, 5)     # spherical holes ...
REFINE_HOLE_RADIUS = (2, 6)  # ... of this radius in voxels
REFINE_BUDGET = (5, 16)   # clicks


class RecordingPrior(ShapePrior3D):
    """f2d-prior's 3D step, keeping what it was asked: the session's previous mask and accepted planes."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def predict(self, image, spacing, previous, accepted):
        self.calls.append((np.array(previous, bool), list(accepted)))
        return super().predict(image, spacing, previous, accepted)


def _thick(image, truth, spacing, rng):
    """The volume reconstructed in slabs along a random axis (the truth: majority of each slab)."""
    axis = int(rng.choice(3, p=[0.6, 0.2, 0.2]))
    thickness = float(rng.uniform(*THICK_MM))
    if thickness < 2 * spacing[axis]:
        return image, truth, spacing
    _, slab = slab_grid(image.shape[axis], spacing[axis], thickness)
    image = slab_mean(image, axis, spacing[axis], thickness)
    truth = slab_mean(truth, axis, spacing[axis], thickness) > 0.5
    spacing = tuple(slab if a == axis else s for a, s in enumerate(spacing))
    return image, truth, spacing


def refine_start(truth, rng) -> np.ndarray:
    """An existing result to refine: the truth shifted, eroded or dilated, with spherical holes."""
    mask = ndimage.shift(truth, rng.integers(-REFINE_SHIFT, REFINE_SHIFT + 1, size=3), order=0)
    steps = int(rng.integers(*REFINE_MORPH, endpoint=True))
    if steps:
        morph = ndimage.binary_erosion if rng.random() < 0.5 else ndimage.binary_dilation
        mask = morph(mask, iterations=steps)
    inside = np.argwhere(mask)
    holes = [(inside[rng.integers(len(inside))], rng.integers(*REFINE_HOLE_RADIUS, endpoint=True))
             for _ in range(int(rng.integers(*REFINE_HOLES, endpoint=True)) if len(inside) else 0)]
    return punch_holes(mask, holes)


def robot_states(image, truth, spacing, f2d, rng, refine: bool = False) -> tuple:
    """(image, truth, [(previous, accepted) before each accept]) of one robot run with f2d-prior's loop,
    on the target's part of the volume; with `refine`, of the refinement protocol from `refine_start`'s
    mask (first plane: the largest error; a click budget)."""
    box = bounding_box(truth, margin=np.ceil(CROP_MARGIN_MM / np.asarray(spacing)).astype(int))
    image, truth = image[box], truth[box]
    existing = refine_start(truth, rng) if refine else None
    recorder = RecordingPrior()
    session = Session(image, spacing, f2d, recorder, CrossRecommender(), existing_mask=existing)
    session.image = np.ascontiguousarray(image, np.float32)  # normalised on the whole volume, not the crop
    max_clicks, seed = int(rng.integers(1, 6)), int(rng.integers(2 ** 31))
    if refine:
        run_robot(session, truth, ITERATIONS, max_clicks=max_clicks, seed=seed,
                  first=largest_error_plane(existing, truth), click_budget=int(rng.integers(*REFINE_BUDGET)))
    else:
        run_robot(session, truth, ITERATIONS, max_clicks=max_clicks, seed=seed,
                  perfect_slices=bool(rng.random() < PERFECT_SHARE))
    return image, truth, recorder.calls


def save_state(path: Path, image, spacing, previous, accepted, truth, grid_size: int = GRID) -> bool:
    """The state's f3D v2 inputs and ground truth on its working grid; False when it has none."""
    inputs = residual_inputs(image, spacing, previous, accepted, grid_size=grid_size)
    if inputs is None:
        return False
    goal = to_grid(torch.from_numpy(truth[inputs.roi.box].astype(np.float32))[None, None], inputs.roi.grid) > 0.5
    np.savez(path, image_path=inputs.image_path[0].numpy().astype(np.float16),
             guidance=(inputs.guidance[0].numpy() > 0.5).astype(np.uint8),
             guess_logit=inputs.guess_logit[0].numpy().astype(np.float16),
             goal=goal[0].numpy().astype(np.uint8), slices=len(accepted),
             previous=inputs.previous[0].numpy().astype(np.float16))
    return True


def load_state_sample(path: Path, previous_channel: bool = False):
    """(image path [1, 2, *grid], guidance [1, 4, *grid], guess logit [1, 1, *grid], goal, slices);
    with `previous_channel` the image path has the session's previous mask as a third channel."""
    with np.load(path) as state:
        as_tensor = lambda name: torch.from_numpy(state[name].astype(np.float32))[None]  # noqa: E731
        image_path = as_tensor("image_path")
        if previous_channel:
            if "previous" not in state.files:
                raise InputError(f"{path}: a loop state made before f3D had a previous-mask input; "
                                 "delete its folder to make the states again")
            image_path = torch.cat([image_path, as_tensor("previous")], 1)
        return (image_path, as_tensor("guidance"), as_tensor("guess_logit"), as_tensor("goal"),
                int(state["slices"]))


def real_target(volumes, rng):
    """(image, truth, spacing) of a training target as it is."""
    target = volumes.pick(rng)
    return (volumes.images[target.image], volumes.labels[target.label] == target.value,
            volumes.spacings[target.image])


def engine_target(volumes, rng):
    """(image, truth, spacing) of the data engine around a training target, or None when the drawn
    lesion does not fit or the synthesised target vanished."""
    from .synth import synth_lesion_volume, synth_volume_from_labels

    target = volumes.pick(rng)
    image, spacing = volumes.images[target.image], volumes.spacings[target.image]
    labels = volumes.labels[target.label]
    host = labels == target.value
    box = bounding_box(host, margin=np.ceil(CROP_MARGIN_MM / np.asarray(spacing)).astype(int))
    if rng.random() < LESION_SHARE:
        made = synth_lesion_volume(image[box], host[box], spacing, rng)
    else:
        made = synth_volume_from_labels(labels[box], target.value, rng)
    if made is None or not made[1].any():
        return None
    return made[0], made[1], spacing


def _generate(job):
    """One worker: `runs` robot runs, their states saved as state-<worker>-<run>-<k>.npz."""
    manifest, folder, worker, runs, seed, f2d_weights, source = job
    from ..models.predictor2d import load_f2d
    from .sampler import TrainingVolumes

    torch.set_num_threads(1)
    volumes = TrainingVolumes(manifest)
    f2d = load_f2d(f2d_weights, "cpu")
    # the real source keeps the streams it had before the engine existed (its cached states stay valid)
    rng = np.random.default_rng([seed, worker] if source == "real" else [seed, worker, SOURCES.index(source)])
    written = 0
    make_target = engine_target if source == "engine" else real_target  # refine: real targets
    for run in range(runs):
        made = make_target(volumes, rng)
        if made is None:
            continue
        image, truth, spacing = made
        if rng.random() < THICK_SHARE:
            image, truth, spacing = _thick(image, truth, spacing, rng)
            if not truth.any():
                continue
        image, truth, calls = robot_states(image, truth, spacing, f2d, rng, refine=source == "refine")
        for previous, accepted in calls:
            name = folder / f"state-{worker}-{run:04d}-{len(accepted)}.npz"
            written += save_state(name, image, spacing, previous, accepted, truth, int(rng.choice(GRID_SIZES)))
    return written


def write_states(manifest, folder, runs: int, workers: int, seed: int, f2d_weights, source: str = "real") -> list:
    """The state files of `runs` robot runs on `source` (SOURCES) volumes, made by `workers` processes
    unless the folder already holds them for the same settings. Returns the files."""
    folder = Path(folder)
    settings = {"manifest": str(manifest), "runs": runs, "seed": seed, "f2d": str(f2d_weights),
                "iterations": ITERATIONS, "perfect_share": PERFECT_SHARE, "thick_share": THICK_SHARE,
                "grids": list(GRID_SIZES), "source": source,
                "previous_mask": True}  # states keep the previous mask: older folders are made again
    if source == "engine":
        settings["lesion_share"] = LESION_SHARE
    if source == "refine":
        settings["refine"] = {"shift": REFINE_SHIFT, "morph": list(REFINE_MORPH), "holes": list(REFINE_HOLES),
                              "hole_radius": list(REFINE_HOLE_RADIUS), "budget": list(REFINE_BUDGET)}
    marker = folder / "settings.json"
    if marker.exists() and json.loads(marker.read_text()) == settings:
        return sorted(folder.glob("state-*.npz"))
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("state-*.npz"):
        old.unlink()
    share = [runs // workers + (w < runs % workers) for w in range(workers)]
    jobs = [(manifest, folder, w, share[w], seed, f2d_weights, source) for w in range(workers)]
    if workers == 1:
        list(map(_generate, jobs))
    else:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            pool.map(_generate, jobs)
    marker.write_text(json.dumps(settings) + "\n")
    return sorted(folder.glob("state-*.npz"))


def residual_gain(f3d_weights, folder, count: int = 120, seed: int = 0) -> dict:
    """Grid IoU with the ground truth of the guess and of f3D v2 (guess + residual) on `count` states
    of `folder` drawn at random (seeded), overall and per number of accepted slices: does the
    residual improve the guess it was trained on? (`snc benchmark f3d-states`)"""
    from ..models.predictor3d import ResidualNetwork3D, load_f3d

    files = sorted(Path(folder).glob("state-*.npz"))
    if not files:
        raise InputError(f"{folder}: no loop state (state-*.npz) here")
    network = load_f3d(f3d_weights, "cpu")
    if not isinstance(network, ResidualNetwork3D):
        raise InputError(f"{f3d_weights}: an f3D v1; loop states are for f3D v2 (--residual)")
    picked = np.random.default_rng(seed).choice(len(files), size=min(count, len(files)), replace=False)
    iou = lambda a, b: float((a & b).sum() / max((a | b).sum(), 1))  # noqa: E731
    rows = {}
    with torch.inference_mode():
        for i in picked:
            image_path, guidance, guess, goal, slices = load_state_sample(files[i], network.model.previous_channel)
            logits, _ = network.model(image_path, guidance, guess)
            truth = goal[0, 0].numpy() > 0.5
            rows.setdefault(slices, []).append((iou(guess[0, 0].numpy() > 0, truth),
                                                iou((logits[0, 1] > logits[0, 0]).numpy(), truth)))
    mean = lambda pairs, k: round(float(np.mean([p[k] for p in pairs])), 4)  # noqa: E731
    every = [p for pairs in rows.values() for p in pairs]
    return {"weights": str(f3d_weights), "states": str(folder), "count": len(every), "seed": seed,
            "iou_guess": mean(every, 0), "iou_f3d": mean(every, 1),
            "by_slices": {k: {"count": len(rows[k]), "iou_guess": mean(rows[k], 0), "iou_f3d": mean(rows[k], 1)}
                          for k in sorted(rows)}}
