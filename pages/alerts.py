"""alerts page (issue 7): being built."""
from __future__ import annotations

import dash

from dashapp.ui.placeholder import page_options, placeholder_layout

dash.register_page(__name__, **page_options("alerts"))


def layout(**_query):
    return placeholder_layout("alerts")
