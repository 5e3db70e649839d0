"""Placeholder until issue #6 builds this module (see dashapp.modules)."""
from dashapp.ui.placeholder import placeholder_page

layout = placeholder_page(__name__, "models")
