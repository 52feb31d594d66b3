import subprocess
import sys

import numpy as np

from SliceAndConquerLib.evaluation.benchmark_speed import _peak_rss_mb


def test_peak_memory_of_a_child_process_is_its_own_not_its_parents():
    held = np.ones(1200 * 2 ** 20 // 8)  # 1.2 GB resident in this (the parent) process; the child
    # imports torch (about 350 MB)
    code = "from SliceAndConquerLib.evaluation.benchmark_speed import _peak_rss_mb; print(_peak_rss_mb())"
    child = int(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                               text=True).stdout.split()[-1])
    assert _peak_rss_mb() >= 1200 and held.sum() > 0
    assert child < 800, f"the child reports {child} MB: its parent's 1.2 GB counted"


def test_the_memory_run_imports_only_what_the_slicer_module_needs():
    """Its peak is the module's: the evaluation's file readers (SimpleITK, ~110 MB) must not count."""
    code = ("import sys; import SliceAndConquerLib.evaluation.benchmark_speed; "
            "import SliceAndConquerLib.pipelines; print('SimpleITK' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.split()[-1] == "False"
