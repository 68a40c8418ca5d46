"""Writes an ablation result: learning curves, tables and one HTML report."""

import base64
import html
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

FILES = ("curves.png", "results.csv", "results.md", "runs.json", "report.html")
"""What `write_outputs` puts in the output directory."""


def plot_curves(result, path):
    """Saves train/dev loss and accuracy per epoch (mean over seeds) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (
        ("loss", "train loss"),
        ("val_loss", "dev loss"),
        ("accuracy", "train accuracy"),
        ("val_accuracy", "dev accuracy"),
    )
    figure, axes = plt.subplots(2, 2, figsize=(12, 8), sharex=True)
    for axis, (key, title) in zip(axes.flat, panels, strict=True):
        for name, seeds in result.runs.items():
            length = min(len(r["curves"][key]) for r in seeds)
            mean = np.mean([r["curves"][key][:length] for r in seeds], axis=0)
            style = {"baseline": "k--", "all": "k-"}.get(name, "-")
            axis.plot(np.arange(1, length + 1), mean, style, label=name)
        axis.set_title(title)
        axis.grid(alpha=0.3)
        if "loss" in key:
            axis.set_yscale("log")
    for axis in axes[1]:
        axis.set_xlabel("epoch")
    axes[0, 1].legend(fontsize="small")
    figure.suptitle(result.table.title, fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _html(result, png):
    rows = result.table.to_records()
    head = "".join(f"<th>{html.escape(c)}</th>" for c in result.table.columns)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row.values())
        + "</tr>"
        for row in rows
    )
    image = base64.b64encode(png).decode("ascii")
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>keras_tricks ablation</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px}}
th{{background:#eee}}</style></head><body>
<h1>keras_tricks ablation lab</h1>
<p>{html.escape(result.table.title)}</p>
<table><tr>{head}</tr>{body}</table>
<h2>Learning curves (mean over seeds)</h2>
<img alt="learning curves" src="data:image/png;base64,{image}">
<h2>Configuration</h2><pre>{html.escape(json.dumps(result.config, indent=2))}</pre>
</body></html>
"""


def _cell(value):
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_outputs(result, out_dir):
    """Writes `FILES` into `out_dir`, all or nothing.

    Everything is written to a temporary directory beside `out_dir` first and
    moved in only once complete, so a failure leaves `out_dir` as it was.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".ablation-", dir=out_dir.parent))
    try:
        plot_curves(result, scratch / "curves.png")
        result.table.to_csv(scratch / "results.csv")
        (scratch / "results.md").write_text(
            f"{result.table.title}\n\n{result.table.to_markdown()}\n"
        )
        (scratch / "runs.json").write_text(
            json.dumps({"config": result.config, "runs": result.runs}, indent=1)
        )
        png = (scratch / "curves.png").read_bytes()
        (scratch / "report.html").write_text(_html(result, png))
        out_dir.mkdir(exist_ok=True)
        for name in FILES:
            os.replace(scratch / name, out_dir / name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return [out_dir / name for name in FILES]
