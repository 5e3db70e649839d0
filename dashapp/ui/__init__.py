"""Shared Dash UI: the shell (``shell``), components (``components``) and the
Plotly chart themes (``theme``). Pages import from the submodules."""
