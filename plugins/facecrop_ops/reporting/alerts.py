"""Alerts that reach people: Airflow's own SMTP notifier, on an `smtp` connection.

A task out of retries (a shard, a miss-rate check over `miss_rate_limits`...) mails the
message it failed with; check_miss_rates' names the classes, their rates and the review
page. The gpu-pool watcher mails each time it reports shards waiting for a pool slot (it
fails a try and retries), with the command that creates the pool. Configured by deployment
settings (deployment); nothing is sent when no address is set.
"""

from __future__ import annotations

from typing import Any

from facecrop_ops.config import deployment

# Airflow renders these with the task's context (StrictUndefined: only names every task
# callback has).
SUBJECT = "[facecrop] {{ dag.dag_id }}.{{ ti.task_id }} %s in {{ run_id }}"
BODY = (
    "<p>{{ dag.dag_id }} run <b>{{ run_id }}</b>: task <b>{{ ti.task_id }}</b> %s (try {{ ti.try_number }}).</p>"
    "<pre>{{ exception | e }}</pre>"
    '<p>Log: <a href="{{ ti.log_url }}">{{ ti.log_url }}</a></p>'
)


def notifiers(what: str) -> list[Any]:
    """Callbacks mailing that a task `what` ("failed", "will retry"): an SmtpNotifier when
    FACECROP_ALERT_EMAIL is set, else none."""
    if not deployment.ALERT_EMAILS:
        return []
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    return [SmtpNotifier(to=list(deployment.ALERT_EMAILS), from_email=deployment.ALERT_FROM,
                         smtp_conn_id=deployment.ALERT_SMTP_CONN_ID, subject=SUBJECT % what, html_content=BODY % what)]
