"""PNG plots next to a run: learning curves, and a spike raster and firing rates of one sample.

Matplotlib runs headless (Agg) so plots work on servers and in CI.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after selecting the backend)
import numpy as np  # noqa: E402

__all__ = ["plot_curves", "plot_raster", "plot_firing_rates"]


def plot_curves(metrics: list[dict], path) -> Path:
    """Loss and accuracy per epoch for the train / val / test splits."""
    epochs = [m["epoch"] for m in metrics]
    figure, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for split in ("train", "val", "test"):
        if f"{split}_loss" in metrics[0]:
            loss_ax.plot(epochs, [m[f"{split}_loss"] for m in metrics], marker=".", label=split)
            acc_ax.plot(epochs, [100 * m[f"{split}_acc"] for m in metrics], marker=".",
                        label=split)
    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss")
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for axis in (loss_ax, acc_ax):
        axis.grid(alpha=0.3)
        axis.legend()
    return _save(figure, path)


def plot_raster(spikes: dict[str, np.ndarray], path, title: str = "") -> Path:
    """One panel per spiking layer (``[T, C]`` spikes): neuron ``c`` fired at step ``t``."""
    figure, axes = plt.subplots(len(spikes), 1, figsize=(8, 1.6 + 1.8 * len(spikes)),
                                squeeze=False, sharex=True)
    for axis, (name, layer) in zip(axes[:, 0], spikes.items()):
        # one cell per (step, neuron), black where it fired: readable for T = 8 and T = 4096
        axis.imshow(np.asarray(layer).T, aspect="auto", cmap="Greys", vmin=0, vmax=1,
                    interpolation="nearest", origin="lower")
        axis.set_ylabel("neuron")
        axis.set_title(f"{name}: rate {layer.mean():.3f}", fontsize=9)
    axes[-1, 0].set_xlabel("time step")
    if title:
        figure.suptitle(title)
    return _save(figure, path)


def plot_firing_rates(rates: dict[str, float], path, title: str = "") -> Path:
    """Mean firing rate of each spiking layer."""
    figure, axis = plt.subplots(figsize=(max(4, 1 + 0.8 * len(rates)), 3.5))
    names = list(rates)
    axis.bar(range(len(names)), [rates[n] for n in names], color="tab:blue")
    axis.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
    axis.set(ylabel="spikes per neuron per step", ylim=(0, 1), title=title or "firing rates")
    axis.grid(axis="y", alpha=0.3)
    return _save(figure, path)


def _save(figure, path) -> Path:
    path = Path(path)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
