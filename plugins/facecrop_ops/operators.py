"""Airflow operators of the facecrop_etl DAG that are more than a task body.

ReviewGate is Airflow's human-in-the-loop ApprovalOperator that asks only when asked for: with
the run's `review_gate` param on and a class missing more faces than `miss_rate_limits`
allows, it waits in Required Actions until a person approves (the run publishes) or rejects
(the task fails, nothing is published); otherwise it finishes at once. One task instead of a
short-circuit in front of an approval: a run without the gate pays one task start, not two.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator


class ReviewGate(ApprovalOperator):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(body="", fail_on_reject=True, **kwargs)  # rejected: the run fails, nothing published

    def execute(self, context: Any) -> Any:
        from facecrop_ops import tasks

        params, run_id = context["params"], context["run_id"]
        with tasks.fail_fast():
            message = tasks.needs_review(params, run_id, tasks.open_store(params))
        if not message:
            self.log.info("no review needed: review_gate is off, or every class is within miss_rate_limits")
            return None
        self.body = message
        return super().execute(context)
