"""Per-layer activation statistics over training (fastai's `ActivationStats`)."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from keras_tricks import _backend
from keras_tricks._validation import check_number, invalid
from keras_tricks.callbacks._base import TrainingCallback


@keras.saving.register_keras_serializable(package="keras_tricks")
class ActivationStats(TrainingCallback):
    """Records each layer's activation mean, std and near-zero share during `fit`.

    Before the first step and then every `every_n_steps` training steps, the
    callback runs the model on a fixed probe batch `x` and records, for every
    watched layer's output `a` (all of its values over the batch):

    - `mean`: `mean(a)`;
    - `std`: `std(a)` (population standard deviation);
    - `near_zero`: the fraction of values with `|a| <= near_zero`;
    - `hist`: a histogram of `a` in `bins` equal bins over `hist_range`
      (values outside fall in the end bins).

    A layer whose std shrinks or grows from one layer to the next, or over
    the steps, signals vanishing or exploding activations (Glorot & Bengio
    2010 follow the same per-layer statistics to compare initialisations);
    a near-zero share that climbs toward 1 shows dead ReLUs. `plot_std`
    draws each layer's std over the steps, `plot_color_dim` the histogram of
    one layer over time (fastai's "colorful dimension").

    Design: Keras callbacks do not see the training batch, and capturing
    layer outputs inside the train step would need patching Keras's layers.
    The callback instead evaluates a feature extractor,
    `keras.Model(model.inputs, [layer.output, ...])`, compiled once, on the
    probe batch `x` you pass (a few hundred rows of training inputs is
    plenty). So it differs from fastai's on purpose in two ways: the batch is
    the same at every record (the curves show how the weights change, free of
    batch-to-batch noise), and the layers run in inference mode
    (`training=False`: no dropout, batch normalisation with its moving
    statistics, which are not touched). The model must be functional or
    Sequential (it needs `model.inputs` and each layer's `output`).

    Steps count training batches over the whole `fit` (across epochs); the
    records are at steps `0, n, 2n, ...` (step 0 is before any update).

    Args:
        x: the probe batch: inputs as `model` takes them (an array, or a
            list/dict of arrays).
        every_n_steps: record every this many steps, >= 1. Defaults to `100`
            (the cost then stays under 5% of a plain `fit`; see
            `docs/callbacks.md`).
        layers: names of the layers to watch. Defaults to `None`: every layer
            with weights.
        near_zero: threshold of the near-zero share, >= 0. Defaults to
            `0.01`.
        bins: number of histogram bins, >= 1. Defaults to `40` (fastai's).
        hist_range: `(low, high)` of the histogram. Defaults to `(-5.0, 5.0)`
            (fastai's `(0, 10)` suits ReLU outputs only).

    Attributes:
        steps: the steps of the records.
        stats: `{layer name: {"mean", "std", "near_zero": arrays of shape
            (records,), "hist": array (records, bins)}}`.

    Raises:
        ValueError: for arguments out of range, or (at the start of `fit`) a
            layer name the model does not have or a model without `inputs`.

    Example:

    >>> keras.utils.set_random_seed(0)
    >>> model = keras.Sequential([keras.Input((4,)),
    ...     keras.layers.Dense(8, activation="relu", name="hidden"),
    ...     keras.layers.Dense(1, name="out")])
    >>> model.compile("sgd", "mse")
    >>> x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    >>> stats = ActivationStats(x[:32], every_n_steps=2)
    >>> _ = model.fit(x, x[:, :1], batch_size=16, epochs=1, verbose=0,
    ...               callbacks=[stats])
    >>> stats.steps
    [0, 2, 4]
    >>> sorted(stats.stats), stats.stats["hidden"]["hist"].shape
    (['hidden', 'out'], (3, 40))

    Reference:
        Glorot & Bengio, "Understanding the difficulty of training deep
        feedforward neural networks", AISTATS 2010.
        Howard & Gugger, "Fastai: A Layered API for Deep Learning",
        Information 2020 (`ActivationStats`, `color_dim`).
    """

    _state_attributes = ("steps", "_step", "_records")

    def __init__(
        self,
        x: Any = None,
        *,
        every_n_steps: int = 100,
        layers: list[str] | None = None,
        near_zero: float = 0.01,
        bins: int = 40,
        hist_range: tuple[float, float] = (-5.0, 5.0),
    ) -> None:
        self.every_n_steps = check_number(
            "every_n_steps", every_n_steps, low=1, integer=True
        )
        if layers is not None and (
            isinstance(layers, str) or not all(isinstance(n, str) for n in layers)
        ):
            raise invalid("layers", layers, "None or a list of layer names", TypeError)
        self.layers = None if layers is None else list(layers)
        self.near_zero = check_number("near_zero", near_zero, low=0)
        self.bins = check_number("bins", bins, low=1, integer=True)
        if (
            not isinstance(hist_range, list | tuple)
            or len(hist_range) != 2
            or not hist_range[0] < hist_range[1]
        ):
            raise invalid("hist_range", hist_range, "(low, high) with low < high")
        self.hist_range = (
            check_number("hist_range[0]", hist_range[0]),
            check_number("hist_range[1]", hist_range[1]),
        )
        self.x = x
        self._extract: Any = None
        self._key: tuple[Any, ...] = ()
        self._names: list[str] = []
        super().__init__()

    def reset_state(self) -> None:
        self.steps: list[int] = []
        self._step = 0
        self._records: dict[str, dict[str, list[Any]]] = {}

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "every_n_steps": self.every_n_steps,
            "layers": self.layers,
            "near_zero": self.near_zero,
            "bins": self.bins,
            "hist_range": list(self.hist_range),
        }

    def _data_arguments(self) -> dict[str, Any]:
        return {"x": self.x}

    @property
    def stats(self) -> dict[str, dict[str, np.ndarray]]:
        """The records as arrays (see the class docstring)."""
        return {
            name: {key: np.asarray(values) for key, values in record.items()}
            for name, record in self._records.items()
        }

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        super().on_train_begin(logs)
        if self.x is None:
            raise invalid(
                "x",
                None,
                "a probe batch of inputs",
                fix="Pass some training inputs: ActivationStats(x_train[:256])",
            )
        # Built once per model and probe: later `fit` calls reuse the trace.
        key = (id(self.model), id(self.x), tuple(self.layers or ()))
        if self._extract is None or self._key != key:
            self._extract, self._names = self._extractor()
            self._key = key
        self._record()

    def on_train_batch_end(
        self, batch: int, logs: dict[str, Any] | None = None
    ) -> None:
        self._step += 1
        if self._step % self.every_n_steps == 0:
            self._record()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.last_epoch = epoch

    def _extractor(self) -> tuple[Any, list[str]]:
        model = self.model
        if not getattr(model, "inputs", None):
            raise invalid(
                "model",
                model,
                "a functional or Sequential model (with `inputs`) for ActivationStats",
            )
        by_name = {layer.name: layer for layer in model.layers}
        if self.layers is None:
            watched = [layer for layer in model.layers if layer.weights]
        else:
            missing = [name for name in self.layers if name not in by_name]
            if missing:
                raise invalid(
                    "layers",
                    self.layers,
                    f"names of the model's layers ({', '.join(by_name)}); "
                    f"{missing[0]!r} is not one",
                )
            watched = [by_name[name] for name in self.layers]
        extractor = keras.Model(model.inputs, [layer.output for layer in watched])

        def outputs(x: Any) -> Any:
            return extractor(x, training=False)

        names = [layer.name for layer in watched]
        return _backend.compiled(model, outputs, self.x), names

    def _record(self) -> None:
        outputs = self._extract(self.x)
        low, high = self.hist_range
        for name, output in zip(self._names, outputs, strict=True):
            values = keras.ops.convert_to_numpy(output).astype("float64").ravel()
            hist, _ = np.histogram(
                np.clip(values, low, high), bins=self.bins, range=(low, high)
            )
            record = self._records.setdefault(
                name, {"mean": [], "std": [], "near_zero": [], "hist": []}
            )
            record["mean"].append(float(values.mean()))
            record["std"].append(float(values.std()))
            record["near_zero"].append(float(np.mean(np.abs(values) <= self.near_zero)))
            record["hist"].append(hist.tolist())
        self.steps.append(self._step)

    def plot_std(self, ax: Any = None) -> Any:
        """Plots each layer's activation std over the steps; returns the figure.

        Args:
            ax: a matplotlib `Axes` to draw on. Defaults to `None` (a new
                figure).
        """
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 4))
        for name, record in self._records.items():
            ax.plot(self.steps, record["std"], label=name)
        ax.set_xlabel("step")
        ax.set_ylabel("activation std")
        ax.set_title("Activation std per layer")
        if self._records:
            ax.legend(fontsize="small")
        return ax.figure

    def plot_color_dim(self, layer: str | None = None, ax: Any = None) -> Any:
        """Plots one layer's histogram over time ("colorful dimension").

        Each column is one record, each row one histogram bin (low values at
        the bottom), the colour `log(1 + count)` as in fastai's `color_dim`:
        healthy training shows a smooth spread; a bright band at 0 that grows
        shows activations collapsing.

        Args:
            layer: the layer's name. Defaults to `None` (the first watched).
            ax: a matplotlib `Axes`. Defaults to `None` (a new figure).

        Returns:
            The matplotlib figure.
        """
        import matplotlib.pyplot as plt

        if not self._records:
            raise ValueError(
                "ActivationStats has no records yet: pass it to `fit` first."
            )
        name = next(iter(self._records)) if layer is None else layer
        if name not in self._records:
            raise invalid(
                "layer", layer, f"one of the watched layers {list(self._records)}"
            )
        hist = np.asarray(self._records[name]["hist"], dtype="float64")
        if ax is None:
            _, ax = plt.subplots(figsize=(6, 4))
        low, high = self.hist_range
        ax.imshow(
            np.log1p(hist).T,
            origin="lower",
            aspect="auto",
            extent=(self.steps[0], self.steps[-1], low, high),
            cmap="viridis",
        )
        ax.set_xlabel("step")
        ax.set_ylabel("activation")
        ax.set_title(f"Activation histogram over time: {name}")
        return ax.figure
