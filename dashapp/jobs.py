"""What a background job may call while it runs, when its scheduler is
watched by `monitor(app, scheduler=...)`:

    from dashapp.jobs import JobCancelled, cancelled, report_progress

    def rebuild_index(items):
        for i, item in enumerate(items):
            if cancelled():          # an operator pressed Cancel in the console
                raise JobCancelled("stopped after %d items" % i)
            index(item)
            report_progress((i + 1) / len(items), f"{i + 1} of {len(items)} items")

Both are cheap (memory only; progress is sent at most twice a second)
and do nothing outside a recorded run, so a job works the same without the
console. A job that returns after `cancelled()` returned True is recorded as
`cancelled` too; one that never checks runs to its end and is recorded as
`succeeded`, with a note that the cancel came too late. They live in the
agent (`ops_agent.apscheduler`); these names stay for existing job code.
"""
from ops_agent.apscheduler import JobCancelled, cancelled, current_run_id, report_progress

__all__ = ["JobCancelled", "cancelled", "current_run_id", "report_progress"]
