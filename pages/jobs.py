"""Placeholder until issue #5 builds this module (see dashapp.modules)."""
from dashapp.ui.placeholder import placeholder_page

layout = placeholder_page(__name__, "jobs")
