"""Writing an evaluation: the JSON, a Markdown table and a plot of mean DSC per iteration."""
from __future__ import annotations

import json
from pathlib import Path


def markdown_table(summary: dict) -> str:
    iterations = max(len(s["mean_dice"]) for s in summary.values())
    head = "| method | " + " | ".join(f"DSC@{i + 1}" for i in range(iterations)) + " | clicks | s/iter | cases |"
    rule = "|---" * (iterations + 4) + "|"
    rows = [f"| {m} | " + " | ".join(f"{d:.3f}" for d in s["mean_dice"]) + " | " * (iterations - len(s["mean_dice"]) + 1)
            + f"{s['mean_clicks']:.1f} | {s['median_seconds']:.2f} | {s['cases']} |" for m, s in summary.items()]
    return "\n".join([head, rule] + rows) + "\n"


def plot_summary(summary: dict, path: Path, title: str = ""):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for method, s in summary.items():
        ax.plot(range(1, len(s["mean_dice"]) + 1), s["mean_dice"], marker="o", label=method)
    ax.set_xlabel("iteration (annotated slices)")
    ax.set_ylabel("mean DSC")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(report: dict, out: Path) -> list[Path]:
    """R.json, R.md and R.png side by side."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    table = out.with_suffix(".md")
    table.write_text(markdown_table(report["summary"]))
    plot = out.with_suffix(".png")
    plot_summary(report["summary"], plot, Path(report["settings"]["manifest"]).name)
    return [out, table, plot]
