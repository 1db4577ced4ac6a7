"""Small bar charts for the service review, drawn by matplotlib as SVG (text, so Git diffs it).

The output is deterministic (fixed hash salt, no date in the metadata): drawing the same figures
again gives the same bytes, and the CMDB gets no commit for an unchanged chart.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # no display: render to files only

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator


def bar_chart(
    title: str, labels: Sequence[str], series: Mapping[str, Sequence[float]], ylabel: str
) -> str:
    """Grouped bars: one group per label, one bar per series; the SVG document as text."""
    with plt.rc_context({"svg.hashsalt": "opsledger", "svg.fonttype": "none"}):
        figure, axes = plt.subplots(figsize=(6.4, 3.2), dpi=100)
        try:
            count = max(len(series), 1)
            width = 0.8 / count
            for i, (name, values) in enumerate(series.items()):
                positions = [x + (i - (count - 1) / 2) * width for x in range(len(labels))]
                axes.bar(positions, list(values), width=width, label=name)
            axes.set_xticks(range(len(labels)), list(labels), fontsize=8)
            if all(float(v).is_integer() for values in series.values() for v in values):
                axes.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts: no half bars
            axes.set_title(title, fontsize=10)
            axes.set_ylabel(ylabel, fontsize=8)
            axes.spines[["top", "right"]].set_visible(False)
            if len(series) > 1:
                axes.legend(fontsize=7, frameon=False)
            figure.tight_layout()
            out = io.StringIO()
            figure.savefig(out, format="svg", metadata={"Date": None})
            return out.getvalue()
        finally:
            plt.close(figure)
