"""Placeholder until issue #6 builds this module (see dashapp.modules)."""
import dash

from dashapp.ui.placeholder import page_options, placeholder_layout

dash.register_page(__name__, **page_options("logs"))

layout = placeholder_layout("logs")
