"""One helper for every page whose module is not built yet.

Each page module still calls `dash.register_page` itself: Dash only imports
files in pages/ whose text contains that call.
"""
from __future__ import annotations

from dash import html

from dashapp.modules import ADMIN_MODULES, BY_KEY, MODULES
from dashapp.ui.components import not_built_card, page_header


def page_options(key: str) -> dict:
    """The `dash.register_page` keyword arguments for module `key`."""
    module = BY_KEY[key]
    return {"path": module.path, "title": f"{module.title} · Ops Console",
            "name": module.title, "order": (MODULES + ADMIN_MODULES).index(module)}


def placeholder_layout(key: str) -> html.Div:
    """The honest layout of a module that is not built yet."""
    module = BY_KEY[key]
    return html.Div([page_header(module.title), not_built_card(module)])
