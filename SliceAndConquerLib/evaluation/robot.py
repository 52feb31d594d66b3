"""The robot user of the paper's protocol (Sec. 4.4), driving a Session from a ground-truth mask."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..clicks import next_click
from ..geometry import drawing_axis
from ..metrics import dice, normalized_surface_dice
from ..session import Plane, Session

STOP_DICE = 0.9   # the 2D stage ends when the slice DSC exceeds this ...
MAX_CLICKS = 5    # ... or after this many clicks; only masks above STOP_DICE are used for alignment


def largest_area_index(truth: np.ndarray, axis: int = 0) -> int:
    areas = truth.sum(axis=tuple(a for a in range(3) if a != axis))
    return int(np.argmax(areas))


def first_plane(truth: np.ndarray, rng: np.random.Generator, axis: int = 0) -> Plane:
    """A random slice next to the slice of largest target area on `axis` (one that still holds
    target; the largest slice itself when no neighbour does)."""
    best = largest_area_index(truth, axis)
    holds_target = truth.any(axis=tuple(a for a in range(3) if a != axis))
    neighbours = [i for i in (best - 1, best + 1) if 0 <= i < truth.shape[axis] and holds_target[i]]
    return Plane(axis, int(rng.choice(neighbours)) if neighbours else best)


def click_until_good(add_click, truth2d: np.ndarray, start: np.ndarray, max_clicks: int = MAX_CLICKS,
                     stop_dice: float = STOP_DICE):
    """The robot's 2D stage: click at the largest error until the slice DSC exceeds `stop_dice` or
    `max_clicks` were used. `add_click(click, mask)` returns the new 2D mask. Returns (clicks, mask)."""
    clicks, mask = [], start
    while len(clicks) < max_clicks and dice(mask, truth2d) <= stop_dice:
        click = next_click(mask, truth2d)
        if click is None:
            break
        clicks.append(click)
        mask = add_click(click, mask)
    return clicks, mask


def annotate_plane(session: Session, truth: np.ndarray, max_clicks: int = MAX_CLICKS,
                   stop_dice: float = STOP_DICE) -> tuple[int, float]:
    """The robot's 2D stage on the session's current plane. Returns (clicks used, final slice DSC)."""
    target = session.plane.of(truth)
    clicks, mask = click_until_good(lambda c, _: session.click(c.row, c.col, c.positive), target,
                                    session.mask2d, max_clicks, stop_dice)
    return len(clicks), dice(mask, target)


@dataclass
class RobotRun:
    dice: list = field(default_factory=list)     # 3D DSC after each iteration
    clicks: list = field(default_factory=list)   # clicks used so far, after each iteration
    seconds: list = field(default_factory=list)  # compute time of each iteration
    nsd: list = field(default_factory=list)      # normalised surface Dice (2 mm) after each iteration
    planes: list = field(default_factory=list)


def largest_error_plane(mask: np.ndarray, truth: np.ndarray) -> Plane:
    """The slice, over all three axes, with the largest error area (refinement protocol, Sec. 5.3)."""
    error = mask ^ truth
    areas = [error.sum(axis=tuple(b for b in range(3) if b != a)) for a in range(3)]
    axis = int(np.argmax([a.max() for a in areas]))
    return Plane(axis, int(np.argmax(areas[axis])))


def run_robot(session: Session, truth: np.ndarray, iterations: int = 6, max_clicks: int = MAX_CLICKS,
              seed: int = 0, first: Plane | None = None, click_budget: int | None = None,
              perfect_slices: bool = False) -> RobotRun:
    """Algorithm 1 with the robot user: annotate, accept, move to the recommended plane, repeat.
    With a click budget (refinement protocol) it stops once the budget is spent. With perfect slices
    the robot accepts each plane's ground truth without clicking: what the pipeline's 3D step and
    slice choice reach when the 2D stage makes no error."""
    rng = np.random.default_rng(seed)
    run = RobotRun()
    # The first slice lies on the axis a user draws on: the native plane of a thick-slice scan.
    plane = first or first_plane(truth, rng, drawing_axis(session.spacing, truth.shape))
    total_clicks = 0
    for _ in range(iterations):
        if plane is None or (click_budget is not None and total_clicks >= click_budget):
            break
        start = time.perf_counter()
        session.begin_slice(plane)
        allowed = max_clicks if click_budget is None else min(max_clicks, click_budget - total_clicks)
        if perfect_slices:
            used = 0
            session.accept_slice(mask=plane.of(truth))
        else:
            used, score = annotate_plane(session, truth, allowed)
            session.accept_slice(align=score > STOP_DICE)
        total_clicks += used
        run.planes.append(plane)
        next_plane = session.recommend()
        run.seconds.append(time.perf_counter() - start)
        run.dice.append(dice(session.mask3d, truth))
        run.nsd.append(normalized_surface_dice(session.mask3d, truth, session.spacing))
        run.clicks.append(total_clicks)
        plane = next_plane
    return run
