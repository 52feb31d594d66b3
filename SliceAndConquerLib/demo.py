"""`snc demo`: the robot user segments the sample volume with the best predictors available."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .data.manifest import read_manifest
from .imageio import write_mask
from .metrics import dice
from .pipelines import best_pipeline


def save_views(image, mask, truth, spacing, path: Path, title: str):
    """The three orthogonal views through the mask's centre, result in red and truth in green."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    centre = [int(round(c)) for c in np.argwhere(mask | truth).mean(axis=0)]
    fig, axes = plt.subplots(1, 3, figsize=(11, 4), dpi=100)
    for axis, ax, name in zip(range(3), axes, ("axis 0 (k)", "axis 1 (j)", "axis 2 (i)")):
        take = lambda v: np.take(v, centre[axis], axis=axis)  # noqa: E731
        rows, cols = [s for a, s in enumerate(spacing) if a != axis]
        ax.imshow(take(image), cmap="gray", aspect=rows / cols, origin="lower" if axis else "upper")
        for volume, colour in ((truth, "lime"), (mask, "red")):
            if take(volume).any():
                ax.contour(take(volume), levels=[0.5], colors=colour, linewidths=1)
        ax.set_title(f"{name} = {centre[axis]}")
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run_demo(sample_manifest: Path, out: Path, iterations: int = 6, seed: int = 0) -> dict:
    from .evaluation.robot import run_robot

    case = read_manifest(sample_manifest)[0]
    volume, truth = case.load()
    name, factory, description = best_pipeline()
    print(f"demo: {case.name} {volume.shape} voxels at {np.round(volume.spacing, 2).tolist()} mm")
    print(f"demo: predictors: {name} — {description}")
    session = factory(volume.array, volume.spacing)
    run = run_robot(session, truth, iterations=iterations, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    mask_path = write_mask(session.mask3d, volume, out / "demo_mask.nii.gz")
    summary = {"case": case.name, "predictors": name, "description": description,
               "dice": [round(d, 4) for d in run.dice], "clicks": run.clicks,
               "planes": [[p.axis, p.index] for p in run.planes]}
    (out / "demo_result.json").write_text(json.dumps(summary, indent=1) + "\n")
    save_views(session.image, session.mask3d, truth, volume.spacing, out / "demo_views.png",
               f"{case.name} — {name}: DSC {dice(session.mask3d, truth):.3f} after {session.t} slices")
    for t, (d, c) in enumerate(zip(run.dice, run.clicks), start=1):
        print(f"demo: iteration {t}: DSC {d:.3f}, {c} clicks so far")
    print(f"demo: wrote {mask_path}, {out / 'demo_views.png'}, {out / 'demo_result.json'}")
    return summary
