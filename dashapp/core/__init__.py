"""Values shared by every capability of the console (one copy each).

Core imports no capability: pages, services, the API and the monitor import
from here, never the other way round.
"""
