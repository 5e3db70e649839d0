"""Chart theming: the Plotly templates ``ops_light`` and ``ops_dark`` and how a
theme toggle re-themes every chart on the page.

Why two templates and a little JavaScript: Plotly draws into SVG with literal
colours, so CSS variables cannot reach inside a chart. Instead every figure
carries a *template*, and the browser swaps it.

The mechanism, end to end:

1. ``PALETTES`` below is the single source of the chart colours. The same
   values appear as ``--ops-*`` variables in ``assets/10-theme.css`` (a unit
   test keeps the two in step).
2. Figure builders in ``dashapp/ui/`` draw with ``ops_light`` (the default
   template once :func:`register_templates` has run, or explicitly with
   :func:`apply_theme`). They set colours only through the template, never as
   literal ``paper_bgcolor``/``font.color`` values, so a template swap
   re-colours everything.
3. The shell renders both templates as JSON in a hidden element
   (``#shell-chart-templates``, see :func:`templates_json`).
4. ``assets/20-theme.js`` watches every ``.js-plotly-plot`` on the page
   (a ``MutationObserver`` finds charts drawn at any time, also after a
   toggle) and listens to each chart's ``plotly_afterplot`` event. Whenever a
   chart's template does not match the page's ``data-bs-theme``, it redraws
   that chart with ``Plotly.react`` and the matching template. So a toggle
   re-themes all charts at once, and a chart a callback re-renders (which
   arrives with ``ops_light``) is re-themed right after it draws, in the same
   task, before the browser paints. ``Plotly.react`` (not ``relayout``) is
   used so no spurious ``relayoutData`` reaches page callbacks.
5. PNG downloads from the modebar use the chart as shown: a dark PNG in
   dark mode, a light one in light mode.

A chart that must keep its own colours can opt out by sitting inside an
element with the ``data-ops-fixed-theme`` attribute.
"""
from __future__ import annotations

import json
import logging
from typing import Literal

import plotly.graph_objects as go
import plotly.io as pio

logger = logging.getLogger(__name__)

Theme = Literal["light", "dark"]
TEMPLATE_NAMES: dict[str, str] = {"light": "ops_light", "dark": "ops_dark"}

FONT_FAMILY = ('Inter, system-ui, -apple-system, "Segoe UI", Roboto, '
               '"Helvetica Neue", Arial, sans-serif')

# Keep in step with the --ops-* variables in assets/10-theme.css.
PALETTES: dict[str, dict] = {
    "light": {
        "surface": "#ffffff",
        "text": "#111827",
        "text_muted": "#6b7280",
        "border": "#e5e7eb",
        "grid": "#eef0f3",
        "primary": "#4f46e5",
        "colorway": ["#4f46e5", "#0ea5e9", "#10b981", "#f59e0b",
                     "#ef4444", "#8b5cf6", "#ec4899", "#14b8a6"],
        "sequential": ["#eef2ff", "#c7d2fe", "#a5b4fc", "#818cf8",
                       "#6366f1", "#4f46e5", "#3730a3"],
    },
    "dark": {
        "surface": "#121720",
        "text": "#e5e7eb",
        "text_muted": "#9aa3b2",
        "border": "#252c38",
        "grid": "#1e2430",
        "primary": "#818cf8",
        "colorway": ["#818cf8", "#38bdf8", "#34d399", "#fbbf24",
                     "#f87171", "#a78bfa", "#f472b6", "#2dd4bf"],
        "sequential": ["#1e1b4b", "#312e81", "#3730a3", "#4f46e5",
                       "#6366f1", "#818cf8", "#c7d2fe"],
    },
}


def _scale(colours: list[str]) -> list[list]:
    step = 1 / (len(colours) - 1)
    return [[round(i * step, 4), c] for i, c in enumerate(colours)]


def _axis(p: dict) -> dict:
    return dict(
        gridcolor=p["grid"], zerolinecolor=p["border"], linecolor=p["border"],
        tickcolor=p["border"], showline=True, ticks="", automargin=True,
        title=dict(standoff=8, font=dict(color=p["text_muted"], size=12)),
        tickfont=dict(color=p["text_muted"], size=11),
    )


def build_template(theme: Theme) -> go.layout.Template:
    """The Plotly template for one theme, built from :data:`PALETTES`."""
    p = PALETTES[theme]
    layout = dict(
        font=dict(family=FONT_FAMILY, size=12, color=p["text_muted"]),
        # horizontal anchors are "auto" (Plotly's default for titles; set
        # explicitly for the legend, whose default is "left"): a figure that
        # moves the title or legend (x=0, x=0.5) is then anchored on the
        # matching side instead of hanging off the paper and squeezing the plot
        title=dict(font=dict(size=14, color=p["text"]), x=0, y=0.97, yanchor="top",
                   pad=dict(l=4)),
        paper_bgcolor=p["surface"],
        plot_bgcolor=p["surface"],
        colorway=p["colorway"],
        colorscale=dict(sequential=_scale(p["sequential"]),
                        sequentialminus=_scale(p["sequential"][::-1])),
        xaxis=_axis(p),
        yaxis={**_axis(p), "showline": False},
        legend=dict(bgcolor="rgba(0,0,0,0)", font=dict(color=p["text_muted"]),
                    orientation="h", x=1, xanchor="auto", y=1.02,
                    yanchor="bottom", title=dict(text="")),
        hoverlabel=dict(bgcolor=p["surface"], bordercolor=p["border"],
                        font=dict(family=FONT_FAMILY, color=p["text"], size=12)),
        modebar=dict(bgcolor="rgba(0,0,0,0)", color=p["text_muted"],
                     activecolor=p["primary"]),
        margin=dict(l=48, r=16, t=40, b=40),
        separators=".,",
        coloraxis=dict(colorbar=dict(outlinewidth=0, ticks="",
                                     tickfont=dict(color=p["text_muted"]))),
    )
    data = dict(
        bar=[go.Bar(marker=dict(line=dict(width=0)))],
        scatter=[go.Scatter(line=dict(width=2), marker=dict(size=6))],
        heatmap=[go.Heatmap(colorscale=_scale(p["sequential"]),
                            colorbar=dict(outlinewidth=0))],
        pie=[go.Pie(marker=dict(line=dict(color=p["surface"], width=2)))],
    )
    return go.layout.Template(layout=layout, data=data)


def register_templates(*, set_default: bool = True) -> None:
    """Register ``ops_light`` and ``ops_dark`` with plotly.io (idempotent).

    With ``set_default`` (the default), ``ops_light`` becomes the template
    new figures get, so plotly.express figures match the console too.
    """
    for theme, name in TEMPLATE_NAMES.items():
        pio.templates[name] = build_template(theme)  # type: ignore[arg-type]
    if set_default:
        pio.templates.default = TEMPLATE_NAMES["light"]


def apply_theme(fig: go.Figure, theme: Theme = "light") -> go.Figure:
    """Give ``fig`` the console template for ``theme``; returns the figure."""
    if theme not in TEMPLATE_NAMES:
        raise ValueError(f"unknown theme {theme!r}; expected 'light' or 'dark'")
    if TEMPLATE_NAMES[theme] not in pio.templates:
        register_templates(set_default=False)
    fig.update_layout(template=pio.templates[TEMPLATE_NAMES[theme]])
    return fig


def templates_json() -> str:
    """Both templates as one JSON string ``{"light": {...}, "dark": {...}}``,
    read by ``assets/20-theme.js`` to re-theme charts in the browser."""
    return json.dumps(
        {theme: build_template(theme).to_plotly_json()  # type: ignore[arg-type]
         for theme in TEMPLATE_NAMES},
        separators=(",", ":"),
    )


register_templates()
