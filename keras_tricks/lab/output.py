"""Writes an ablation result: effects plot, learning curves, tables, one HTML report.

A finished study writes every file of `FILES` at once. While a study runs,
`write_runs` keeps `runs.json` up to date after every finished run, and an
interrupted one gets a `report.html` marked incomplete; until the study
completes the directory holds the `INCOMPLETE` marker and none of the files
that only a complete study writes.
"""

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

FILES = (
    "effects.png",
    "curves.png",
    "results.csv",
    "results.md",
    "runs.json",
    "report.html",
)
"""What `write_outputs` puts in the output directory."""

INCOMPLETE = "INCOMPLETE"
"""Name of the marker file in an output directory whose study has not
finished (interrupted, or still running): it holds `runs.json` (the runs
that finished) and, after an interruption, a `report.html` marked
incomplete; `--resume` continues it."""


_VERDICT_COLOURS = {"helps": "tab:green", "hurts": "tab:red"}
_KIND_MARKERS = {"add-one": "o", "leave-one-out": "s", "recipe": "D"}


def _pyplot() -> Any:
    matplotlib = require("matplotlib", "lab", "the lab's plots")
    matplotlib.use("Agg")
    return require("matplotlib.pyplot", "lab", "the lab's plots")


def _scenarios(result: Any) -> list[str]:
    return list(dict.fromkeys(row["scenario"] for row in result.table))


def plot_effects(result: Any, path: str | os.PathLike[str] | io.BytesIO) -> None:
    """Saves the forest plot: each trick's effect with its 95% interval.

    One panel per scenario, each with its own x axis (an effect of +0.8 in
    one scenario does not flatten +0.01 in another); one row per add-one
    (circle), leave-one-out (square) and recipe (diamond) variant; green
    when the interval is above 0 (`helps`), red when below (`hurts`), grey
    otherwise; orange and hollow, without an interval, when the seeds split
    between trained and not trained (`mixed`).
    """
    plt = _pyplot()
    groups = {
        name: [
            r
            for r in result.table
            if r["scenario"] == name and r["kind"] != "reference"
        ]
        for name in _scenarios(result)
    }
    groups = {name: rows for name, rows in groups.items() if rows}
    heights = [len(rows) + 1.5 for rows in groups.values()] or [1.0]
    figure, axes = plt.subplots(
        max(len(groups), 1),
        1,
        figsize=(8, 0.8 + 0.32 * sum(heights)),
        squeeze=False,
        gridspec_kw={"height_ratios": heights},
    )
    for axis, (name, rows) in zip(axes[:, 0], groups.items(), strict=False):
        labels = []
        for position, row in enumerate(reversed(rows)):
            mixed = row["verdict"] == "mixed"
            colour = (
                "tab:orange"
                if mixed
                else _VERDICT_COLOURS.get(row["verdict"], "tab:gray")
            )
            if math.isfinite(row["ci_low"]):
                axis.plot(
                    [row["ci_low"], row["ci_high"]],
                    [position, position],
                    color=colour,
                    linewidth=2,
                )
            axis.plot(
                row["effect"],
                position,
                _KIND_MARKERS[row["kind"]],
                color=colour,
                markerfacecolor="white" if mixed else colour,
                markersize=7,
            )
            note = f" ({row['note']})" if row.get("note") else ""
            labels.append(f"{row['variant']}{note}")
        axis.axvline(0.0, color="k", linewidth=0.8)
        axis.set_yticks(range(len(labels)), labels, fontsize="small")
        axis.set_ylim(-0.7, len(labels) - 0.3)
        axis.set_title(name, fontsize="small", loc="left", parse_math=False)
        axis.grid(axis="x", alpha=0.3)
        left, right = axis.get_xlim()
        axis.set_xlim(min(left, -0.01), max(right, 0.01))
    axes[-1, 0].set_xlabel("effect on dev accuracy (95% interval over seeds)")
    handles = [
        plt.Line2D([], [], color="tab:gray", marker=m, linestyle="", label=k)
        for k, m in _KIND_MARKERS.items()
    ]
    axes[0, 0].legend(
        handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small"
    )
    figure.suptitle(_title(result), fontsize="small", parse_math=False)
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


def _panels(result: Any, scenario: str) -> list[tuple[str, list[str]]]:
    """The small multiples of a scenario: one panel per trick, each with at
    most 4 lines (reference, + trick, recipe, recipe - trick)."""
    rows = [r for r in result.table if r["scenario"] == scenario]
    labels = {r["variant"] for r in rows}
    panels = []
    for trick in dict.fromkeys(r["trick"] for r in rows if r["trick"]):
        lines = [f"+ {trick}"]
        if f"recipe - {trick}" in labels:
            lines += ["recipe", f"recipe - {trick}"]
        panels.append((trick, ["reference", *[x for x in lines if x in labels]]))
    return panels or [("reference", ["reference"])]


_LINE_STYLES = (("k", "-"), ("tab:blue", "-"), ("k", "--"), ("tab:blue", ":"))
"""Reference, + trick, recipe, recipe - trick."""


def _draw_panel(axis: Any, result: Any, scenario: str, labels: list[str]) -> None:
    from matplotlib.ticker import MaxNLocator

    runs = [r for r in result.runs if r["scenario"] == scenario]
    bands = {}
    for label in labels:
        curves = [
            r["curves"]["val_accuracy"]
            for r in runs
            if label in r["variant"].split(" = ")
        ]
        curves = [c for c in curves if c]
        if curves:
            bands[label] = (_band(curves), max(len(c) for c in curves))
    longest = max((length for _, length in bands.values()), default=0)
    for index, label in enumerate(labels):
        if label not in bands:
            continue
        (epochs, mean, std), length = bands[label]
        colour, style = _LINE_STYLES[index % len(_LINE_STYLES)]
        # A run that stopped early (early stopping) ends with a marker.
        marker = "o" if length < longest else None
        axis.plot(
            epochs,
            mean,
            style,
            color=colour,
            label=label,
            marker=marker,
            markevery=[len(epochs) - 1],
            markersize=4,
        )
        axis.fill_between(epochs, mean - std, mean + std, color=colour, alpha=0.12)
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.grid(alpha=0.3)
    if axis.lines:
        axis.legend(fontsize="x-small", loc="lower right")


def plot_curves(
    result: Any, path: str | os.PathLike[str] | io.BytesIO, scenario: str | None = None
) -> None:
    """Saves dev accuracy per epoch as small multiples, as a PNG.

    One row of panels per scenario, one panel per trick, each with at most
    4 lines: the reference (black, solid), the reference plus the trick
    (blue, solid) and, where the scenario has a recipe, the recipe (black,
    dashed) and the recipe without the trick (blue, dotted). Each line is
    the mean over seeds, the band one standard deviation either side.

    Args:
        result: an `AblationResult`.
        path: file (or binary stream) to write.
        scenario: draw only this scenario. Defaults to `None` (all).
    """
    plt = _pyplot()
    names = [scenario] if scenario else _scenarios(result)
    layout = [_panels(result, name) for name in names]
    columns = max((len(p) for p in layout), default=1)
    rows = max(len(names), 1)
    figure, axes = plt.subplots(
        rows,
        columns,
        figsize=(2.8 * columns + 0.8, 2.4 * rows + 0.5),
        squeeze=False,
        sharey="row",
    )
    for row, (name, panels) in enumerate(zip(names, layout, strict=True)):
        for column in range(columns):
            axis = axes[row, column]
            if column >= len(panels):
                axis.set_visible(False)
                continue
            trick, labels = panels[column]
            _draw_panel(axis, result, name, labels)
            axis.set_title(f"{name}: {trick}", fontsize="small", parse_math=False)
            axis.set_xlabel("epoch", fontsize="small")
            if column == 0:
                axis.set_ylabel("dev accuracy")
    figure.suptitle(_title(result), fontsize="small", parse_math=False)
    figure.tight_layout()
    figure.savefig(path, dpi=90, format="png")
    plt.close(figure)


def _number(value: Any, sign: bool = False) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:+.3f}" if sign else f"{value:.3f}"
    return str(value)


def interval_text(row: dict[str, Any]) -> str:
    """A row's 95% interval as `[a, b]` (3 decimals), or its note."""
    if row.get("note"):
        return str(row["note"])
    if not math.isfinite(row["ci_low"]):
        return ""
    return f"[{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]"


def _summary_row(row: dict[str, Any], metrics: Any = ()) -> dict[str, str]:
    extra = []
    if "gap" in metrics:
        extra.append(f"gap {row['gap']:.3f}")
    if row["diverged"]:
        extra.append(f"diverged {row['diverged']:.0%}")
    return {
        "scenario": row["scenario"],
        "variant": row["variant"],
        "dev accuracy": _number(row["mean"]),
        "effect": ""
        if row["kind"] == "reference"
        else _number(row["effect"], sign=True),
        "95% interval": interval_text(row),
        "verdict": row["verdict"],
        "trained": f"{row['trained']}/{row['seeds']}",
        "test accuracy": _number(row["test_accuracy"]),
        "also": ", ".join(extra),
    }


def summary_rows(result: Any) -> list[dict[str, str]]:
    """The table people read: one row per variant, numbers to 3 decimals."""
    scenarios = result.config["scenarios"]
    return [
        _summary_row(row, scenarios.get(row["scenario"], {}).get("metrics", ()))
        for row in result.table
    ]


DOCS_COLUMNS: tuple[str, ...] = ("scenario", "variant", "dev accuracy", "effect")
DOCS_COLUMNS += ("95% interval", "verdict", "trained")
"""The columns of `markdown_summary`."""


def markdown_summary(path: str | os.PathLike[str]) -> str:
    """The summary of a `results.csv` as a Markdown table (`docs/lab.md`'s
    demo section shows that of a committed `make demo` run)."""
    import csv

    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    numeric = ("mean", "effect", "ci_low", "ci_high", "diverged", "test_accuracy")
    lines = ["| " + " | ".join(DOCS_COLUMNS) + " |", "|" + "---|" * len(DOCS_COLUMNS)]
    for row in rows:
        values: dict[str, Any] = dict(row)
        for key in numeric:
            values[key] = float(row[key]) if row[key] else math.nan
        cells = _summary_row(values)
        lines.append("| " + " | ".join(cells[c] for c in DOCS_COLUMNS) + " |")
    return "\n".join(lines)


def _html_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape(_number(v))}</td>" for v in row.values())
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


_SETTINGS = (
    ("train_rows", "training rows"),
    ("label_noise", "mislabelled share"),
    ("depth", "hidden layers"),
    ("width", "width"),
    ("epochs", "epochs"),
    ("optimizer", "optimizer"),
    ("learning_rate", "learning rate"),
    ("batch_size", "batch size"),
    ("reference", "reference"),
    ("recipe", "recipe"),
)


def _settings_table(settings: dict[str, Any]) -> str:
    def text(value: Any) -> str:
        if isinstance(value, dict):
            return ", ".join(f"{k}={v}" for k, v in value.items()) or "no trick"
        if isinstance(value, list | tuple):
            return ", ".join(str(v) for v in value) or "-"
        if isinstance(value, float):
            return f"{value:g}"
        return str(value)

    cells = "".join(
        f"<tr><th>{html.escape(label)}</th><td>{html.escape(text(settings[key]))}"
        "</td></tr>"
        for key, label in _SETTINGS
        if key in settings
    )
    return f'<table class="settings">{cells}</table>'


def _png(draw: Any, *args: Any) -> str:
    buffer = io.BytesIO()
    draw(*args, buffer)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _versions(config: dict[str, Any]) -> dict[str, str]:
    """The versions that made the runs, with the backend the runs recorded
    (the process writing the report may use another one)."""
    import importlib.metadata

    import keras

    import keras_tricks

    backend = str(config.get("backend") or keras.backend.backend())
    versions = {
        "python": platform.python_version(),
        "keras": keras.__version__,
        "keras_tricks": keras_tricks.__version__,
        "numpy": np.__version__,
        "backend": backend,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
    }
    for name in ("tensorflow", "jax"):
        if name in backend:
            versions[name] = importlib.metadata.version(name)
    return versions


def _html(result: Any) -> str:
    config = result.config
    summary = summary_rows(result)
    sections = []
    for name in _scenarios(result):
        rows = [
            {k: v for k, v in r.items() if k != "scenario"}
            for r in summary
            if r["scenario"] == name
        ]
        settings = config["scenarios"].get(name, {})
        image = _png(lambda r, n, f: plot_curves(r, f, n), result, name)
        sections.append(
            f"<h2>{html.escape(name)}</h2>"
            f"<p>{html.escape(str(settings.get('regime', '')))}</p>"
            f"{_settings_table(settings)}{_html_table(rows)}"
            f'<img alt="learning curves, {html.escape(name)}" '
            f'src="data:image/png;base64,{image}">'
        )
    effects = _png(plot_effects, result)
    banner = ""
    title = "keras_tricks ablation lab"
    if not result.complete:
        title += " (INCOMPLETE)"
        banner = (
            '<p class="incomplete">INCOMPLETE: this study was interrupted after '
            f"{len(result.runs)} of {config.get('planned_runs', '?')} runs. The "
            "numbers below cover only the runs that finished. Continue it with "
            f"<code>keras-tricks {html.escape(config.get('subcommand', 'ablate'))} "
            "--resume DIR</code>.</p>"
        )
    overview = (
        f"{html.escape(config['dataset'])}, model {html.escape(config['model'])}, "
        f"seeds {html.escape(_seed_text(config))}, backend "
        f"{html.escape(str(config.get('backend', '')))}; {config.get('train_rows')} "
        f"train, {config.get('dev_rows')} dev, {config.get('test_rows')} test rows"
    )
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}
table{{border-collapse:collapse;font-size:small;margin:0.5em 0}}
td,th{{border:1px solid #ccc;padding:3px 6px}}th{{background:#eee;text-align:left}}
.incomplete{{background:#c00;color:#fff;padding:0.6em;font-weight:bold}}
img{{max-width:100%}}</style></head><body>
<h1>{title}</h1>{banner}
<p>{overview}. Effect = paired difference in dev accuracy with its 95%
interval. A trick <b>helps</b> (or <b>hurts</b>) only when the whole interval
is above (below) 0; <b>mixed</b>: some seeds trained and others did not, so
no interval is given.</p>
<img alt="effect of each trick" src="data:image/png;base64,{effects}">
{"".join(sections)}
<h2>Versions</h2>{_settings_table_plain(_versions(config))}
<h2>Reproduce</h2><pre>{html.escape(config.get("command", ""))}</pre>
</body></html>
"""


def _settings_table_plain(values: dict[str, str]) -> str:
    cells = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
        for k, v in values.items()
    )
    return f'<table class="settings">{cells}</table>'


def _seed_text(config: dict[str, Any]) -> str:
    seeds = config.get("seed_list") or list(range(config["seeds"]))
    return f"{seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else str(seeds[0])


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


def _write_text(path: Path, text: str) -> None:
    """Writes `path` whole or not at all (a temporary file, then a rename)."""
    scratch = path.with_name(f".{path.name}.tmp")
    scratch.write_text(text)
    os.replace(scratch, path)


def write_runs(result: Any, out_dir: str | os.PathLike[str]) -> Path:
    """Saves `runs.json` (settings and every finished run) into `out_dir`.

    Called after every finished run. While the study is incomplete the
    directory gets the `INCOMPLETE` marker and loses the files that only a
    complete study writes (from an earlier study in the same directory), so
    nothing in it looks complete.

    Returns:
        The path of `runs.json`.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not result.complete:
        (out_dir / INCOMPLETE).write_text(
            f"{len(result.runs)} of {result.config.get('planned_runs', '?')} runs "
            "finished; continue with --resume\n"
        )
        for name in FILES:
            if name != "runs.json":
                (out_dir / name).unlink(missing_ok=True)
    path = out_dir / "runs.json"
    document = {"complete": result.complete, "config": result.config}
    document["runs"] = result.runs
    _write_text(path, json.dumps(_finite(document), indent=1))
    return path


def write_incomplete(result: Any, out_dir: str | os.PathLike[str]) -> list[Path]:
    """Writes what an interrupted study has: `runs.json` and a `report.html`
    marked INCOMPLETE (plus the `INCOMPLETE` marker).

    Returns:
        The paths written.
    """
    out_dir = Path(out_dir)
    paths = [write_runs(result, out_dir)]
    if result.table:
        _write_text(out_dir / "report.html", _html(result))
        paths.append(out_dir / "report.html")
    return [*paths, out_dir / INCOMPLETE]


def read_runs(out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The `runs.json` of `out_dir`: `complete`, `config` and `runs`.

    Raises:
        FileNotFoundError: when `out_dir` holds no `runs.json`.
    """
    path = Path(out_dir) / "runs.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"Cannot resume {out_dir}: it holds no runs.json (the file a study "
            "writes after each finished run)."
        )
    return json.loads(path.read_text())


def write_outputs(result: Any, out_dir: str | os.PathLike[str]) -> list[Path]:
    """Writes `FILES` into `out_dir`, all or nothing.

    Everything is written to a temporary directory beside `out_dir` first and
    moved in only once complete, so a failure leaves `out_dir` as it was.
    A result that is not complete (an interrupted study) gets
    `write_incomplete` instead.

    Returns:
        The paths written, in `FILES` order.
    """
    if not result.complete:
        return write_incomplete(result, out_dir)
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
                _finite(
                    {"complete": True, "config": result.config, "runs": result.runs}
                ),
                indent=1,
            )
        )
        (scratch / "report.html").write_text(_html(result))
        out_dir.mkdir(exist_ok=True)
        for name in FILES:
            os.replace(scratch / name, out_dir / name)
        (out_dir / INCOMPLETE).unlink(missing_ok=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return [out_dir / name for name in FILES]
