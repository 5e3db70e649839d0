"""What every page does with a callback failure that no page handles itself."""
from __future__ import annotations

import logging

from dashapp.security.audit import AuditUnavailable
from dashapp.ui.components import push_toast

logger = logging.getLogger(__name__)


def on_callback_error(err: Exception) -> None:
    """Dash's app-wide `on_error`: a change refused because its audit row
    could not be written is a toast (the page's outputs stay as they were);
    any other error is raised again, as without a handler, so Flask logs it
    and answers as before."""
    if isinstance(err, AuditUnavailable):
        logger.warning("page action refused: %s", err)
        push_toast(str(err), "danger", title="Not done", duration=None)
        return None
    raise err
