"""`snc segment`: run Slice and Conquer on a file without Slicer, replaying a recorded interaction
or letting the robot user click from a reference label.

Interaction file (JSON), in array indices of the image read by SimpleITK ([k, j, i]):
    {"slices": [{"plane": [axis, index], "clicks": [[row, col, true], [row, col, false]]}, ...]}
Each entry is one 2D stage: its clicks in order, then accept. Rows and columns are the two remaining
array axes in order (axis 0: [j, i]; axis 1: [k, i]; axis 2: [k, j]).
"""
from __future__ import annotations

import json
from pathlib import Path

from .errors import InputError
from .imageio import read_label, read_volume, write_mask
from .pipelines import best_pipeline
from .session import Plane


def read_interaction(path) -> list:
    try:
        data = json.loads(Path(path).read_text())
        return [(Plane(int(s["plane"][0]), int(s["plane"][1])),
                 [(int(r), int(c), bool(p)) for r, c, p in s["clicks"]]) for s in data["slices"]]
    except FileNotFoundError:
        raise InputError(f"{path}: interaction file not found") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, IndexError) as exc:
        raise InputError(f"{path}: not a valid interaction file ({type(exc).__name__}: {exc})") from None


def segment(image_path, out, clicks_path=None, init_mask=None, robot_label=None, value=1, slices=6, seed=0):
    """Returns (session, pipeline name); writes the 3D mask in the image's geometry."""
    volume = read_volume(image_path)
    existing = read_label(init_mask, 1, reference=volume) if init_mask else None
    name, factory, _ = best_pipeline()
    session = factory(volume.array, volume.spacing, existing_mask=existing)
    if robot_label:
        from .evaluation.robot import run_robot

        truth = read_label(robot_label, value, reference=volume)
        run_robot(session, truth, iterations=slices, seed=seed)
    else:
        steps = read_interaction(clicks_path)
        for plane, clicks in steps:
            session.begin_slice(plane)
            for row, col, positive in clicks:
                session.click(row, col, positive)
            session.accept_slice()
    write_mask(session.mask3d, volume, out)
    return session, name
