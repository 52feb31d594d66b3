"""Named ways to build a Session (predictors + recommender). The evaluation, the demo, the CLI and
the Slicer logic all pick their pipeline here, so a trained model plugs in at one place."""
from __future__ import annotations

from functools import lru_cache
from typing import Callable

from .models.weights import shipped
from .session import Session


@lru_cache(maxsize=2)
def _shipped_f2d(device="auto"):
    from .models.predictor2d import load_f2d

    return load_f2d(shipped("f2d"), device)


@lru_cache(maxsize=2)
def _shipped_f3d(device="auto"):
    from .models.predictor3d import load_f3d

    return load_f3d(shipped("f3d"), device, f2d_weights=shipped("f2d"))


def _is_residual(f3d) -> bool:
    from .models.predictor3d import ResidualNetwork3D

    return isinstance(f3d, ResidualNetwork3D)


def snc_session(image, spacing, existing_mask=None, device="auto", align=None, recommender=None,
                f2d=None, f3d=None) -> Session:
    """f2D per click, f3D per accept, the next slice from f3D's confidence (Eq. 2). With f3D v2 the
    confidence picks among the slices once the cross is done (`CrossRecommender(unsure_first)`) and
    there is no TV-L1 alignment (its guess already passes through every accepted mask); f3D v1 uses
    the paper's Eq. 2 ranking and the alignment. `f2d`/`f3d`: other predictors than the shipped ones."""
    from .align import align_to_accepted
    from .classic import CrossRecommender
    from .recommend import TAU, ConfidenceRecommender

    f3d = f3d or _shipped_f3d(device)
    residual = _is_residual(f3d)
    if recommender is None:
        recommender = CrossRecommender(unsure_first=True, unsure_below=TAU) if residual else ConfidenceRecommender()
    align = (not residual) if align is None else align
    return Session(image, spacing, f2d or _shipped_f2d(device), f3d, recommender, existing_mask=existing_mask,
                   postprocess=align_to_accepted if align else None)


def snc_random_next_session(image, spacing, existing_mask=None, device="auto") -> Session:
    from .recommend import RandomRecommender

    return snc_session(image, spacing, existing_mask, device, recommender=RandomRecommender(seed=0))


def snc_nopost_session(image, spacing, existing_mask=None, device="auto") -> Session:
    return snc_session(image, spacing, existing_mask, device, align=False)


def snc_align_session(image, spacing, existing_mask=None, device="auto") -> Session:
    return snc_session(image, spacing, existing_mask, device, align=True)


def snc_eq2_session(image, spacing, existing_mask=None, device="auto") -> Session:
    """The paper's Eq. 2 alone picks the next slice (f2d-prior's rule only when nothing is unsure)."""
    from .classic import CrossRecommender
    from .recommend import ConfidenceRecommender

    return snc_session(image, spacing, existing_mask, device,
                       recommender=ConfidenceRecommender(fallback=CrossRecommender()))


def snc_cross_session(image, spacing, existing_mask=None, device="auto") -> Session:
    """snc with f2d-prior's next-slice rule (f3D's confidence unused): isolates the 3D step."""
    from .classic import CrossRecommender

    return snc_session(image, spacing, existing_mask, device, recommender=CrossRecommender())


def classic_session(image, spacing, existing_mask=None) -> Session:
    from .classic import FillBetweenSlices3D, GapRecommender, GrabCut2D

    return Session(image, spacing, GrabCut2D(), FillBetweenSlices3D(), GapRecommender(),
                   existing_mask=existing_mask)


def f2d_fbs_session(image, spacing, existing_mask=None, device="auto") -> Session:
    from .classic import FillBetweenSlices3D, GapRecommender

    return Session(image, spacing, _shipped_f2d(device), FillBetweenSlices3D(), GapRecommender(),
                   existing_mask=existing_mask)


def f2d_prior_session(image, spacing, existing_mask=None, device="auto") -> Session:
    from .classic import CrossRecommender, ShapePrior3D

    return Session(image, spacing, _shipped_f2d(device), ShapePrior3D(), CrossRecommender(),
                   existing_mask=existing_mask)


def f2d_sweep_session(image, spacing, existing_mask=None, device="auto") -> Session:
    from .classic import CrossRecommender
    from .models.sweep import SweptPrior3D

    f2d = _shipped_f2d(device)
    return Session(image, spacing, f2d, SweptPrior3D(f2d), CrossRecommender(unsure_first=True),
                   existing_mask=existing_mask)


# name -> (factory(image, spacing, existing_mask=None) -> Session, description)
PIPELINES: dict[str, tuple[Callable, str]] = {
    "grabcut-fbs": (classic_session, "BASELINE: OpenCV GrabCut per click + Slicer's Fill between slices "
                                     "(no trained models)"),
}
if shipped("f2d") is not None:
    PIPELINES["f2d-fbs"] = (f2d_fbs_session, "trained f2D per click + Slicer's Fill between slices, "
                                             "next slice by extent search and gap bisection")
    PIPELINES["f2d-prior"] = (f2d_prior_session, "trained f2D per click + the shape prior (signed "
                                                 "distances interpolated between accepted planes, moved "
                                                 "by the accepted planes' intensity evidence)")
    PIPELINES["f2d-sweep"] = (f2d_sweep_session, "f2d-prior, then every slice the prior crosses "
                                                 "segmented again by f2D on each axis (majority of the "
                                                 "three axes)")

if shipped("f2d") is not None and shipped("f3d") is not None:
    PIPELINES["snc"] = (snc_session, "trained f2D per click + trained f3D per accepted slice (v2: a "
                                     "residual on the shape prior's guess), the next slice from the "
                                     "cross, then f3D's unsure voxels")
    PIPELINES["snc-nopost"] = (snc_nopost_session, "snc without the TV-L1 alignment (ablation)")
    PIPELINES["snc-align"] = (snc_align_session, "snc with the TV-L1 alignment (ablation)")
    PIPELINES["snc-random-next"] = (snc_random_next_session, "snc with a random valid next slice (ablation)")
    PIPELINES["snc-eq2"] = (snc_eq2_session, "snc with the paper's Eq. 2 alone choosing the next slice")
    PIPELINES["snc-cross"] = (snc_cross_session, "snc with f2d-prior's next-slice rule (ablation)")

# Chosen on the macro mean over the groups of the grouped validation manifest (README, Benchmarks;
# results/val_pipelines.json, results/val_sweep.json), mean DSC after 1..6 slices:
#   f2d-prior 0.448/0.615/0.686/0.724/0.748/0.767 (AUC 0.676, NSD@6 0.614), under a second per accept;
#   f2d-sweep 0.454/0.612/0.678/0.715/0.749/0.756 (AUC 0.672, NSD@6 0.606), 5-10x slower.
# The sweep leads on CT organs (0.786 against 0.749 after six) and small targets (0.863 / 0.861); the
# prior on the concave phantom (0.714 / 0.631), thick-slice scans (0.733 / 0.729) and brain regions
# (0.777 / 0.771). So f2d-prior is the default; the others stay available by name.
PREFERENCE = ("f2d-prior", "f2d-sweep", "f2d-fbs", "snc", "grabcut-fbs")


def best_pipeline() -> tuple[str, Callable, str]:
    """(name, factory, description) of the best pipeline this installation has."""
    name = next(n for n in PREFERENCE if n in PIPELINES)
    factory, description = PIPELINES[name]
    return name, factory, description
