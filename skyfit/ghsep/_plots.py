"""Plots of a gamma/hadron study: ROC curves per bin, efficiencies, significance before/after."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._cuts import roc_curve

__all__ = ["plot_roc", "plot_significance", "plot_class_protocol"]


def plot_roc(ev: dict, test: dict, instrument: str, out: Path) -> Path:
    """ROC curves of the ML and traditional scores per analysis bin (:func:`evaluate`'s ``ev`` on the
    ``test`` sample), written to ``out/roc_INSTRUMENT.png``."""
    from ..plotting import use_file_backend

    use_file_backend()
    import matplotlib.pyplot as plt

    bins = sorted(int(b) for b in np.unique(ev["bins"]["gamma"]) if b >= 0)
    n = len(bins)
    cols = min(n, 3)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.4 * rows), squeeze=False)
    g, b = test["gamma"], test["background"]
    for ax, k in zip(axes.ravel(), bins, strict=False):
        sg, sb = ev["bins"]["gamma"] == k, ev["bins"]["background"] == k
        if sg.sum() < 20 or sb.sum() < 20:
            ax.set_visible(False)
            continue
        for label, sc in (("ML", ev["scores"]), ("traditional", ev["traditional_scores"])):
            eg, eb = roc_curve(sc["gamma"][sg], g["WEIGHT"][sg], sc["background"][sb], b["WEIGHT"][sb])
            ax.plot(eg, np.maximum(eb, 1e-6), label=label)
        ax.set_yscale("log")
        ax.set_xlabel("gamma efficiency")
        ax.set_ylabel("background survival")
        ax.set_title(f"{instrument} bin {k}")
        ax.legend(fontsize=8)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    fig.tight_layout()
    path = Path(out) / f"roc_{instrument}.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_significance(studies: dict, out: Path) -> Path:
    """Histograms of the significance before and after the ML cut per case of :func:`run_significance`,
    written to ``out/significance_before_after.png``."""
    from ..plotting import use_file_backend

    use_file_backend()
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(studies), figsize=(4.2 * len(studies), 3.4), squeeze=False)
    for ax, (name, st) in zip(axes.ravel(), studies.items(), strict=True):
        sb, sa = np.sqrt(st["before"]["ts"]), np.sqrt(st["after"]["ts"])
        hi = max(sb.max(), sa.max()) * 1.1 + 1
        bins = np.linspace(0, hi, 25)
        ax.hist(sb, bins, histtype="step", label=f"traditional (median {np.median(sb):.1f})")
        ax.hist(sa, bins, histtype="step", label=f"ML (median {np.median(sa):.1f})")
        ax.axvline(5, color="k", lw=0.8, ls=":")
        ax.set_xlabel("significance sqrt(TS)")
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(out) / "significance_before_after.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_class_protocol(summary: dict, out: Path) -> Path:
    """The event-class protocol's ratios over the traditional cut (``summarise_protocol``'s output): per
    case and for the median, the single ML cut, gammaness classes and gammaness x PSF classes at the
    leading-pion constant x1 with their 68 % intervals over seeds, and the x0.3-x3 band as thin bars.
    Written to ``out/class_significance.png``."""
    from ..plotting import use_file_backend

    use_file_backend()
    import matplotlib.pyplot as plt

    central = summary["x1"]
    labels = [k for k in central if k != "seeds"]
    methods = (("ratio_single_cut", "single ML cut"), ("ratio_classes", "gammaness classes"),
               ("ratio_classes_psf", "gammaness x PSF classes"))  # fmt: skip
    fig, ax = plt.subplots(figsize=(9, 4))
    x = np.arange(len(labels))
    for i, (key, name) in enumerate(methods):
        xs = x + (i - 1) * 0.25
        v = np.array([central[c][key] for c in labels])
        err = np.array([[v[j] - central[c][key + "_lo"], central[c][key + "_hi"] - v[j]] for j, c in enumerate(labels)])
        ax.errorbar(xs, v, yerr=err.T, fmt="o", capsize=3, label=name)
        band = [summary[f][c][key] for f in ("x0.3", "x3") if f in summary for c in labels]
        if len(band) == 2 * len(labels):
            a, b = np.array(band[: len(labels)]), np.array(band[len(labels) :])
            lo, hi = np.minimum(a, b), np.maximum(a, b)
            ax.vlines(xs + 0.06, lo, hi, colors="0.5", lw=1)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.axhline(1.4, color="k", lw=0.8, ls=":")
    ax.set_xticks(x, labels, rotation=15)
    ax.set_ylabel("median significance / traditional cut")
    ax.set_title(f"0.01 Crab, one year WCDA + KM2A; {len(central['seeds'])} sample seeds (68 % over seeds; "
                 "grey: constant x0.3-x3)", fontsize=9)  # fmt: skip
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(out) / "class_significance.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
