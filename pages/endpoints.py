"""Placeholder until issue #3 builds this module (see dashapp.modules)."""
import dash

from dashapp.ui.placeholder import page_options, placeholder_layout

dash.register_page(__name__, **page_options("endpoints"))

layout = placeholder_layout("endpoints")
