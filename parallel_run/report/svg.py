"""Inline SVG bar charts for the HTML report: labelled horizontal bars, every text escaped (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH, LABEL_W, VALUE_W, BAR_H, GAP = 640, 220, 90, 18, 6


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    css: str = "bar"  # a class from the report's inline stylesheet
    text: str | None = None  # what to print at the bar's end; the value when None


def bar_chart(title: str, bars: Sequence[Bar]) -> str:
    """Return one `<svg>` element drawing `bars` scaled to the largest value, titled for screen readers."""
    top = max((b.value for b in bars), default=0.0) or 1.0
    span = WIDTH - LABEL_W - VALUE_W
    height = len(bars) * (BAR_H + GAP) + GAP
    parts = [
        f'<svg class="chart" role="img" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}"><title>{escape(title)}</title>'
    ]
    for i, bar in enumerate(bars):
        y = GAP + i * (BAR_H + GAP)
        w = max(1.0, span * bar.value / top) if bar.value > 0 else 0.0
        text = bar.text if bar.text is not None else f"{bar.value:g}"
        parts.append(
            f'<text x="{LABEL_W - 8}" y="{y + BAR_H - 5}" text-anchor="end">{escape(_clip(bar.label))}</text>'
            f'<rect class="{escape(bar.css)}" x="{LABEL_W}" y="{y}" width="{w:.1f}" height="{BAR_H}">'
            f"<title>{escape(bar.label)}: {escape(text)}</title></rect>"
            f'<text x="{LABEL_W + w + 6:.1f}" y="{y + BAR_H - 5}">{escape(text)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _clip(label: str, limit: int = 32) -> str:
    return label if len(label) <= limit else "\u2026" + label[-(limit - 1) :]
