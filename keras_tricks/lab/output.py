"""Writes an ablation result: effects plot, learning curves, tables, one HTML report."""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import platform
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from keras_tricks._extras import require
from keras_tricks.lab.scenarios import SCENARIOS

FILES = (
    "effects.png",
    "curves.png",
    "results.csv",
    "results.md",
    "runs.json",
    "report.html",
)
"""What `write_outputs` puts in the output directory."""

_VERDICT_COLOURS = {"helps": "tab:green", "hurts": "tab:red"}
_KIND_MARKERS = {"add-one": "o", "leave-one-out": "s", "recipe": "D"}
_KIND_STYLES = {
    "reference": ("k", "-"),
    "recipe": ("k", "--"),
}


def _pyplot() -> Any:
    matplotlib = require("matplotlib", "lab", "the lab's plots")
    matplotlib.use("Agg")
    return require("matplotlib.pyplot", "lab", "the lab's plots")


def _scenarios(result: Any) -> list[str]:
    return list(dict.fromkeys(row["scenario"] for row in result.table))


def plot_effects(result: Any, path: str | os.PathLike[str] | io.BytesIO) -> None:
    """Saves the forest plot: each trick's effect with its 95% interval.

    One row per add-one (circle), leave-one-out (square) and recipe
    (diamond) variant, grouped by scenario; green when the interval is
    above 0 (`helps`), red when below (`hurts`), grey otherwise.
    """
    plt = _pyplot()
    rows = [r for r in result.table if r["kind"] != "reference"]
    figure, axis = plt.subplots(figsize=(8, 0.9 + 0.32 * max(len(rows), 1)))
    labels = []
    for position, row in enumerate(reversed(rows)):
        colour = _VERDICT_COLOURS.get(row["verdict"], "tab:gray")
        low, high = row["ci_low"], row["ci_high"]
        if math.isfinite(low):
            axis.plot([low, high], [position, position], color=colour, linewidth=2)
        axis.plot(
            row["effect"],
            position,
            _KIND_MARKERS[row["kind"]],
            color=colour,
            markersize=7,
        )
        labels.append(f"{row['scenario']}: {row['variant']}")
    axis.axvline(0.0, color="k", linewidth=0.8)
    axis.set_yticks(range(len(labels)), labels, fontsize="small")
    axis.set_ylim(-0.7, len(labels) - 0.3)
    axis.set_xlabel("effect on dev accuracy (95% interval over seeds)")
    axis.grid(axis="x", alpha=0.3)
    handles = [
        plt.Line2D([], [], color="tab:gray", marker=m, linestyle="", label=k)
        for k, m in _KIND_MARKERS.items()
    ]
    axis.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1))
    axis.set_title(_title(result), fontsize="small", parse_math=False)
    figure.tight_layout()
    figure.savefig(path, dpi=90, format="png")
    plt.close(figure)


def _title(result: Any) -> str:
    config = result.config
    return f"{config['dataset']}, {config['model']}, {config['seeds']} seed(s)"


def _band(curves: list[list[float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Epochs, mean and std over seeds; runs that stopped early end sooner."""
    length = max(len(c) for c in curves)
    padded = np.full((len(curves), length), np.nan)
    for i, curve in enumerate(curves):
        padded[i, : len(curve)] = curve
    counts = np.sum(np.isfinite(padded), axis=0)
    mean = np.nanmean(np.where(counts > 0, padded, 0.0), axis=0)
    std = np.nanstd(np.where(counts > 0, padded, 0.0), axis=0)
    return np.arange(1, length + 1), mean, std


def _draw_scenario(axis: Any, result: Any, scenario: str) -> None:
    from matplotlib.ticker import MaxNLocator

    runs = [r for r in result.runs if r["scenario"] == scenario]
    colours = iter(["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"])
    colour_of: dict[str, str] = {}
    for label in dict.fromkeys(r["variant"] for r in runs):
        curves = [r["curves"]["val_accuracy"] for r in runs if r["variant"] == label]
        curves = [c for c in curves if c]
        if not curves:
            continue
        epochs, mean, std = _band(curves)
        first = label.split(" = ")[0]
        if first in _KIND_STYLES:
            colour, style = _KIND_STYLES[first]
        else:
            trick = first.split(" ")[-1]
            if trick not in colour_of:
                colour_of[trick] = next(colours, "tab:brown")
            colour = colour_of[trick]
            style = ":" if first.startswith("recipe -") else "-"
        axis.plot(epochs, mean, style, color=colour, label=label)
        axis.fill_between(epochs, mean - std, mean + std, color=colour, alpha=0.15)
    axis.set_title(f"{scenario}: {SCENARIOS[scenario].regime}", fontsize="small")
    axis.set_xlabel("epoch")
    axis.set_ylabel("dev accuracy")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.grid(alpha=0.3)
    axis.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))


def plot_curves(
    result: Any, path: str | os.PathLike[str] | io.BytesIO, scenario: str | None = None
) -> None:
    """Saves dev accuracy per epoch, one panel per scenario, as a PNG.

    Each line is the mean over seeds, the band one standard deviation
    either side. The reference is black and solid, the recipe black and
    dashed; each trick has its colour, solid when added to the reference,
    dotted when left out of the recipe.

    Args:
        result: an `AblationResult`.
        path: file (or binary stream) to write.
        scenario: draw only this scenario. Defaults to `None` (all).
    """
    plt = _pyplot()
    names = [scenario] if scenario else _scenarios(result)
    figure, axes = plt.subplots(
        len(names), 1, figsize=(10, 3.4 * len(names)), squeeze=False
    )
    for axis, name in zip(axes[:, 0], names, strict=True):
        _draw_scenario(axis, result, name)
    figure.suptitle(_title(result), fontsize="small", parse_math=False)
    figure.tight_layout()
    figure.savefig(path, dpi=90, format="png")
    plt.close(figure)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def _html_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row.values())
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _png(draw: Any, *args: Any) -> str:
    buffer = io.BytesIO()
    draw(*args, buffer)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _versions() -> dict[str, str]:
    import keras

    import keras_tricks

    versions = {
        "python": platform.python_version(),
        "keras": keras.__version__,
        "keras_tricks": keras_tricks.__version__,
        "numpy": np.__version__,
        "backend": keras.backend.backend(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
    }
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        versions["tensorflow"] = tf.__version__
    return versions


def _html(result: Any) -> str:
    sections = []
    for name in _scenarios(result):
        rows = [r for r in result.table.to_records() if r["scenario"] == name]
        image = _png(lambda r, n, f: plot_curves(r, f, n), result, name)
        settings = html.escape(json.dumps(result.config["scenarios"][name]))
        sections.append(
            f"<h2>{html.escape(name)}</h2><p>{html.escape(SCENARIOS[name].regime)}"
            f"</p><p><code>{settings}</code></p>{_html_table(rows)}"
            f'<img alt="learning curves, {html.escape(name)}" '
            f'src="data:image/png;base64,{image}">'
        )
    effects = _png(plot_effects, result)
    config = json.dumps(result.config, indent=2, default=str)
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>keras_tricks ablation</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}
table{{border-collapse:collapse;font-size:small}}
td,th{{border:1px solid #ccc;padding:3px 6px}}th{{background:#eee}}
img{{max-width:100%}}</style></head><body>
<h1>keras_tricks ablation lab</h1>
<p>{html.escape(result.table.title)}. A trick <b>helps</b> (or <b>hurts</b>)
only when the whole 95% interval of its paired effect is above (below) 0.</p>
<img alt="effect of each trick" src="data:image/png;base64,{effects}">
{"".join(sections)}
<h2>Settings</h2><pre>{html.escape(config)}</pre>
<h2>Versions</h2><pre>{html.escape(json.dumps(_versions(), indent=2))}</pre>
<h2>Reproduce</h2><pre>{html.escape(result.config.get("command", ""))}</pre>
</body></html>
"""


def _finite(value: Any) -> Any:
    """`value` with NaN and infinities as `None`, for strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def check_writable(out_dir: str | os.PathLike[str]) -> Path:
    """Checks, before any training, that `out_dir` can be written.

    Creates the missing parent directories and a scratch directory beside
    `out_dir` (removed again).

    Raises:
        OSError: (e.g. `PermissionError`, `NotADirectoryError`) with a
            message naming `out_dir` when it cannot be written.
    """
    out_dir = Path(out_dir)
    try:
        if out_dir.exists() and not out_dir.is_dir():
            raise NotADirectoryError(f"{out_dir} exists and is not a directory")
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tempfile.mkdtemp(prefix=".ablation-", dir=out_dir.parent))
        if out_dir.exists():
            shutil.rmtree(tempfile.mkdtemp(prefix=".ablation-", dir=out_dir))
    except OSError as error:
        detail = error.strerror or str(error)
        raise type(error)(
            f"Cannot write the output directory {out_dir}: {detail}"
        ) from None
    return out_dir


def write_outputs(result: Any, out_dir: str | os.PathLike[str]) -> list[Path]:
    """Writes `FILES` into `out_dir`, all or nothing.

    Everything is written to a temporary directory beside `out_dir` first and
    moved in only once complete, so a failure leaves `out_dir` as it was.

    Returns:
        The paths written, in `FILES` order.
    """
    out_dir = check_writable(out_dir)
    scratch = Path(tempfile.mkdtemp(prefix=".ablation-", dir=out_dir.parent))
    try:
        plot_effects(result, scratch / "effects.png")
        plot_curves(result, scratch / "curves.png")
        result.table.to_csv(scratch / "results.csv")
        (scratch / "results.md").write_text(
            f"{result.table.title}\n\n{result.table.to_markdown()}\n"
        )
        (scratch / "runs.json").write_text(
            json.dumps(
                _finite({"config": result.config, "runs": result.runs}), indent=1
            )
        )
        (scratch / "report.html").write_text(_html(result))
        out_dir.mkdir(exist_ok=True)
        for name in FILES:
            os.replace(scratch / name, out_dir / name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return [out_dir / name for name in FILES]
