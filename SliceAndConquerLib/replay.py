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
from .imageio import (DEFAULT_SEGMENT_COLOR, DEFAULT_SEGMENT_NAME, is_segmentation_file, read_label, read_segment,
                      read_volume, write_mask, write_segmentation)
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


def read_init_mask(path, volume, segment_name=None):
    """The mask to refine: voxels equal to 1 of a label image, or the segment `segment_name` of a Slicer
    segmentation (.seg.nrrd; the only segment when no name is given). Returns (mask, segment dict or None)."""
    if is_segmentation_file(path):
        return read_segment(path, segment_name, volume)
    if segment_name is not None:
        raise InputError(f"--init-segment {segment_name!r}: only a Slicer segmentation (.seg.nrrd) has named "
                         f"segments, not {path}")
    return read_label(path, 1, reference=volume), None


def segment(image_path, out, clicks_path=None, init_mask=None, robot_label=None, value=1, slices=6, seed=0,
            init_segment=None, segment_name=None, segment_color=None):
    """Returns (session, pipeline name); writes the 3D mask in the image's geometry: a label image, or for
    `out` ending in .seg.nrrd a Slicer segmentation with one segment (`segment_name`, `segment_color`;
    by default those of the --init-mask segment, else Slicer's defaults)."""
    if init_segment is not None and not init_mask:
        raise InputError(f"--init-segment {init_segment!r} needs --init-mask FILE.seg.nrrd")
    volume = read_volume(image_path)
    existing, init = read_init_mask(init_mask, volume, init_segment) if init_mask else (None, None)
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
    if is_segmentation_file(out):
        name_out = segment_name or (init or {}).get("name") or DEFAULT_SEGMENT_NAME
        color_out = segment_color or (init or {}).get("color") or DEFAULT_SEGMENT_COLOR
        write_segmentation(session.mask3d, volume, out, name=name_out, color=color_out)
    else:
        write_mask(session.mask3d, volume, out)
    return session, name
