"""Placeholder until issue #5 builds this module (see dashapp.modules)."""
import dash

from dashapp.ui.placeholder import page_options, placeholder_layout

dash.register_page(__name__, **page_options("jobs"))

layout = placeholder_layout("jobs")
