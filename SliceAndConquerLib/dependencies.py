"""Python packages SliceAndConquer needs beyond what Slicer bundles, and how to install them (no Qt).

    missing = missing_packages()        # e.g. ["torch", "cv2"]: import names that cannot be imported
    plan = install_plan(missing)        # what would be installed, and how
    describe(plan)                      # one line per package, for the one confirmation
    install(missing)                    # after the user agreed; asks nothing; returns what is still missing

How each is installed (see `install_plan`), on every supported Slicer (5.8, 5.10, 5.12, preview):
- torch with light-the-torch (`python -m light_the_torch install torch>=...`, run by Slicer's own Python),
  the tool the PyTorch extension (PyTorchUtils) uses to pick the build matching this computer's GPU
  driver. PyTorchUtils' `installTorch` is not called: it always adds torchvision, which nothing here uses,
  and it would ask a second question. A torch installed before, e.g. from the PyTorch Utils module, is
  used as it is.
- acsconv with `pip install acsconv --no-deps` (`slicer.util.pip_install`): its declared dependencies
  (torchvision, pandas, ...) are not needed by the operators SliceAndConquer uses;
- cv2 (opencv-contrib-python-headless) with `slicer.packaging.pip_ensure` where Slicer has it (5.12 and
  the preview), numpy & co. passed as `skip_packages`; on 5.8 and 5.10 (no pip_ensure) with
  `slicer.util.pip_install(... --no-deps)`.
Packages Slicer bundles (numpy, SimpleITK, vtk) are never installed or upgraded.

Nothing here imports `slicer` at module level, so it also works (and is tested) outside Slicer.
"""
from __future__ import annotations

import importlib
import inspect
import logging

# import name -> pip distribution name
PACKAGES = {
    "torch": "torch",
    "acsconv": "acsconv",
    "cv2": "opencv-contrib-python-headless",
}
TORCH_REQUIREMENT = "torch>=2.1"
LIGHT_THE_TORCH = "light-the-torch>=0.5"
NO_DEPS = {"acsconv"}                                    # always installed without their dependencies
PROTECTED = ("numpy", "SimpleITK", "vtk", "torch")       # bundled by Slicer (or installed as torch above)
REQUESTER = "SliceAndConquer"


def missing_packages(names=tuple(PACKAGES)) -> list[str]:
    """The import names among `names` that cannot be imported (not installed, or broken)."""
    missing = []
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as error:  # ImportError, or e.g. OSError from a broken native library
            logging.info("SliceAndConquer: cannot import %s (%s)", name, error)
            missing.append(name)
    return missing


def default_pip_ensure():
    """`slicer.packaging.pip_ensure` (Slicer >= 5.12 and the preview), or None (5.8, 5.10, outside Slicer)."""
    try:
        module = importlib.import_module("slicer.packaging")
    except Exception:
        return None
    return getattr(module, "pip_ensure", None)


def default_pip_install():
    import slicer.util

    return slicer.util.pip_install


def default_execute_module():
    """Runs `python -m <module> <args>` with Slicer's Python: `slicer.util.executePythonModule` (5.11+) or
    `slicer.util._executePythonModule` (5.8, 5.10; what PyTorchUtils itself calls)."""
    import slicer.util

    execute = getattr(slicer.util, "executePythonModule", None) or getattr(slicer.util, "_executePythonModule")
    return lambda module, args: execute(module, args)


def _keywords(function) -> set:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return set()
    if any(p.kind == p.VAR_KEYWORD for p in parameters):
        return {"*"}
    return {p.name for p in parameters}


def install_plan(missing, pip_ensure=None) -> list[tuple]:
    """How each missing package would be installed, in order: a list of (import name, method, argument)
    with method "light-the-torch" (argument: the requirement), "pip_ensure" (argument: requirement string;
    numpy & co. are passed as skip_packages) or "pip_install" (argument: the pip arguments as one string)."""
    keywords = _keywords(pip_ensure) if pip_ensure is not None else set()
    can_skip = "*" in keywords or "skip_packages" in keywords
    plan = []
    for name in sorted(missing, key=lambda n: list(PACKAGES).index(n) if n in PACKAGES else len(PACKAGES)):
        distribution = PACKAGES.get(name, name)
        if name == "torch":
            plan.append((name, "light-the-torch", TORCH_REQUIREMENT))
        elif name in NO_DEPS or not can_skip:
            plan.append((name, "pip_install", f"{distribution} --no-deps"))
        else:
            plan.append((name, "pip_ensure", distribution))
    return plan


def describe(plan) -> str:
    """One line per step."""
    lines = []
    for name, method, argument in plan:
        if method == "light-the-torch":
            lines.append(f"torch: {argument} with light-the-torch (the build for this computer's GPU driver, "
                         "as the PyTorch extension picks it; no torchvision)")
        elif method == "pip_ensure":
            lines.append(f"{name}: {argument} (pip, without numpy, SimpleITK, vtk: Slicer has them)")
        else:
            lines.append(f"{name}: pip install {argument}")
    return "\n".join(lines)


def install(missing, confirm=False, pip_ensure=None, pip_install=None, execute_module=None) -> list[str]:
    """Install the `missing` import names (see `install_plan`); returns those still missing afterwards.

    Ask the user once, listing `describe(install_plan(missing, default_pip_ensure()))`, before calling
    this; it asks nothing itself (no PyTorchUtils dialog, pip_ensure without prompts), so it can run under a
    wait cursor. `confirm` is accepted for older callers and ignored.
    `pip_ensure`, `pip_install` and `execute_module` (a function(module, args) running `python -m`) default
    to Slicer's; tests inject fakes."""
    del confirm  # the one question was asked by the caller
    if pip_ensure is None and pip_install is None:
        pip_ensure = default_pip_ensure()
    pip_install = pip_install or default_pip_install()
    plan = install_plan(missing, pip_ensure)
    for name, method, argument in plan:
        logging.info("SliceAndConquer: installing %s (%s %s)", name, method, argument)
        if method == "light-the-torch":
            _install_torch(argument, pip_install, execute_module or default_execute_module())
        elif method == "pip_ensure":
            _call_pip_ensure(pip_ensure, argument)
        else:
            pip_install(argument)
    importlib.invalidate_caches()
    return missing_packages([name for name, _, _ in plan])


def _install_torch(requirement, pip_install, execute_module):
    if missing_packages(["light_the_torch"]):
        pip_install(LIGHT_THE_TORCH)
        importlib.invalidate_caches()
    execute_module("light_the_torch", ["install", requirement])


def _call_pip_ensure(pip_ensure, distribution):
    try:
        from packaging.requirements import Requirement

        requirement = Requirement(distribution)
    except ImportError:  # pip_ensure needs it anyway; a fake in a test may not
        requirement = distribution
    keywords = _keywords(pip_ensure)
    options = {"skip_packages": list(PROTECTED), "prompt_install": False, "prompt_restart": False,
               "requester": REQUESTER}
    pip_ensure([requirement], **{k: v for k, v in options.items() if "*" in keywords or k in keywords})
