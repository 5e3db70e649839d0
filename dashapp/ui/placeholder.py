"""One helper for every page whose module is not built yet."""
from __future__ import annotations

import dash
from dash import html

from dashapp.modules import BY_KEY, MODULES
from dashapp.ui.components import not_built_card, page_header


def placeholder_page(module_name: str, key: str) -> html.Div:
    """Register the page for module `key` and return its honest layout."""
    module = BY_KEY[key]
    dash.register_page(module_name, path=module.path,
                       title=f"{module.title} · Ops Console", name=module.title,
                       order=MODULES.index(module))
    return html.Div([page_header(module.title), not_built_card(module)])
