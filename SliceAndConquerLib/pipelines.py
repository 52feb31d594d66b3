"""Named ways to build a Session (predictors + recommender). The evaluation, the demo, the CLI and
the Slicer logic all pick their pipeline here, so a trained model plugs in at one place."""
from __future__ import annotations

from typing import Callable

from .session import Session


def classic_session(image, spacing, existing_mask=None) -> Session:
    from .classic import FillBetweenSlices3D, GapRecommender, GrabCut2D

    return Session(image, spacing, GrabCut2D(), FillBetweenSlices3D(), GapRecommender(),
                   existing_mask=existing_mask)


# name -> (factory(image, spacing, existing_mask=None) -> Session, description)
PIPELINES: dict[str, tuple[Callable, str]] = {
    "grabcut-fbs": (classic_session, "BASELINE: OpenCV GrabCut per click + Slicer's Fill between slices "
                                     "(no trained models yet)"),
}


def best_pipeline() -> tuple[str, Callable, str]:
    """(name, factory, description) of the best pipeline this installation has: the trained networks
    ("snc") once they ship, the classical baseline until then."""
    name = "snc" if "snc" in PIPELINES else "grabcut-fbs"
    factory, description = PIPELINES[name]
    return name, factory, description
