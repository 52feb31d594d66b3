"""Python packages SliceAndConquer needs beyond what Slicer bundles, and how to install them (no Qt).

    missing = missing_packages()        # e.g. ["torch", "cv2"]: import names that cannot be imported
    install(missing)                    # after the user agreed; returns what is still missing

How each is installed (see `install_plan`):
- torch through the PyTorch extension (`PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=...)`),
  which picks the wheel matching the GPU driver;
- acsconv with `pip install --no-deps`: its declared dependencies are not needed by its operators;
- cv2 (opencv-contrib-python-headless) with `slicer.pydeps.pip_ensure` / `slicer.packaging.pip_ensure`
  (Slicer >= 5.11) with numpy & co. skipped, else `slicer.util.pip_install(... --no-deps)`.
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
NO_DEPS = {"acsconv"}                                    # always installed without their dependencies
PROTECTED = ("numpy", "SimpleITK", "vtk", "torch")       # bundled by Slicer (or by the PyTorch extension)
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
    """`pip_ensure` of this Slicer (slicer.pydeps on >= 5.11, slicer.packaging on some builds), or None."""
    for module_name in ("slicer.pydeps", "slicer.packaging"):
        try:
            module = importlib.import_module(module_name)
        except Exception:
            continue
        if hasattr(module, "pip_ensure"):
            return module.pip_ensure
    return None


def default_pip_install():
    import slicer.util

    return slicer.util.pip_install


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
    with method "PyTorchUtils" (argument None), "pip_ensure" (argument: requirement string; numpy & co.
    are passed as skip_packages) or "pip_install" (argument: the pip arguments as one string)."""
    keywords = _keywords(pip_ensure) if pip_ensure is not None else set()
    can_skip = "*" in keywords or "skip_packages" in keywords
    plan = []
    for name in sorted(missing, key=lambda n: list(PACKAGES).index(n) if n in PACKAGES else len(PACKAGES)):
        distribution = PACKAGES.get(name, name)
        if name == "torch":
            plan.append((name, "PyTorchUtils", None))
        elif name in NO_DEPS or not can_skip:
            plan.append((name, "pip_install", f"{distribution} --no-deps"))
        else:
            plan.append((name, "pip_ensure", distribution))
    return plan


def describe(plan) -> str:
    """One line per step, for a confirmation dialog."""
    lines = []
    for name, method, argument in plan:
        if method == "PyTorchUtils":
            lines.append("torch: through the PyTorch extension (the build matching this computer's GPU)")
        else:
            lines.append(f"{name}: pip install {argument}")
    return "\n".join(lines)


def install(missing, confirm=True, pip_ensure=None, pip_install=None, torch_installer=None) -> list[str]:
    """Install the `missing` import names (see `install_plan`); returns those still missing afterwards.

    Ask the user before calling this. `confirm` is forwarded to PyTorchUtils' own confirmation (it shows
    the torch wheel it picked); pip steps do not ask again. `pip_ensure`, `pip_install` and
    `torch_installer` (a function(askConfirmation) -> torch module or None) default to Slicer's; tests
    inject fakes. Raises RuntimeError when the PyTorch extension is absent or torch was declined."""
    if pip_ensure is None and pip_install is None:
        pip_ensure = default_pip_ensure()
    plan = install_plan(missing, pip_ensure)
    for name, method, argument in plan:
        logging.info("SliceAndConquer: installing %s (%s %s)", name, method, argument or "")
        if method == "PyTorchUtils":
            installer = torch_installer or _pytorch_utils_installer()
            if installer(askConfirmation=confirm) is None:
                raise RuntimeError("PyTorch was not installed, so SliceAndConquer cannot run")
        elif method == "pip_ensure":
            _call_pip_ensure(pip_ensure, argument)
        else:
            (pip_install or default_pip_install())(argument)
    importlib.invalidate_caches()
    return missing_packages([name for name, _, _ in plan])


def _call_pip_ensure(pip_ensure, distribution):
    try:
        from packaging.requirements import Requirement

        requirement = Requirement(distribution)
    except ImportError:  # pip_ensure needs it anyway; a fake in a test may not
        requirement = distribution
    keywords = _keywords(pip_ensure)
    options = {"skip_packages": list(PROTECTED), "prompt_install": False, "requester": REQUESTER}
    pip_ensure([requirement], **{k: v for k, v in options.items() if "*" in keywords or k in keywords})


def _pytorch_utils_installer():
    try:
        import PyTorchUtils
    except ImportError:
        raise RuntimeError("SliceAndConquer needs the PyTorch extension to install torch: install "
                           "'PyTorch' from the Extensions Manager, restart Slicer and try again") from None
    return PyTorchUtils.PyTorchUtilsLogic().installTorch
