"""Writing an evaluation: the JSON, a Markdown table and a plot of DSC per iteration (macro mean over
groups, and each group)."""
from __future__ import annotations

import json
from pathlib import Path


def _cells(values, width) -> str:
    return " | ".join(f"{v:.3f}" for v in values) + " | " * (width - len(values) + 1)


def markdown_table(summary: dict) -> str:
    """One block per method: the macro mean over groups (DSC per iteration, NSD at the end, AUC),
    then one row per group."""
    iterations = max(len(s["mean_dice"]) for s in summary.values())
    head = ("| method | group | " + " | ".join(f"DSC@{i + 1}" for i in range(iterations))
            + " | NSD@end | AUC | clicks | s/iter | cases |")
    rule = "|---" * (iterations + 7) + "|"
    rows = []
    for method, s in summary.items():
        groups = s.get("by_group", {})
        rows.append(f"| **{method}** | macro ({len(groups)} groups) | " + _cells(s["macro_dice"], iterations)
                    + f"{s['macro_nsd'][-1]:.3f} | {s['macro_auc_dice']:.3f} | {s['mean_clicks']:.1f} | "
                    f"{s['median_seconds']:.2f} | {s['cases']} |")
        for group, g in groups.items():
            rows.append(f"| {method} | {group} | " + _cells(g["mean_dice"], iterations)
                        + f"{g['mean_nsd'][-1]:.3f} | {g['auc_dice']:.3f} | {g['mean_clicks']:.1f} | "
                        f"{g['median_seconds']:.2f} | {g['cases']} |")
    return "\n".join([head, rule] + rows) + "\n"


def plot_summary(summary: dict, path: Path, title: str = ""):
    """A panel for the macro mean and one per group, each with every method's DSC per iteration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys(g for s in summary.values() for g in s.get("by_group", {})))
    panels = [("macro mean over groups", {m: s["macro_dice"] for m, s in summary.items()})]
    panels += [(g, {m: s["by_group"][g]["mean_dice"] for m, s in summary.items() if g in s["by_group"]})
               for g in groups]
    columns = min(3, len(panels))
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.4 * rows), dpi=100, squeeze=False)
    for ax, (name, curves) in zip(axes.flat, panels):
        for method, values in curves.items():
            ax.plot(range(1, len(values) + 1), values, marker="o", markersize=3, label=method)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("annotated slices")
        ax.set_ylabel("mean DSC")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(title)
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
