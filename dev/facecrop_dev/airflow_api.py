"""A small client of Airflow 3's public REST API (/api/v2), doing what a person does in the UI:
trigger a run, unpause the DAG, manage pools, watch runs and tasks, read task logs.

The deployment tests and benchmarks drive Airflow through it rather than through its
database, so what they prove is what a user of the UI or the API sees.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

FINISHED = ("success", "failed")


class ApiError(RuntimeError):
    """The API refused a request; the message has the status and Airflow's detail."""


class AirflowApi:
    def __init__(self, base_url: str, username: str, password: str) -> None:
        """Logged in as a person logs in: a token for the user's name and password."""
        import httpx

        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(base_url=self.base_url, timeout=30)
        token = self._check(self.http.post("/auth/token", json={"username": username, "password": password})).json()["access_token"]
        self.http.headers["Authorization"] = f"Bearer {token}"

    @staticmethod
    def _check(response: Any) -> Any:
        if response.status_code >= 400:
            raise ApiError(f"{response.request.method} {response.request.url.path}: HTTP {response.status_code} {response.text[:500]}")
        return response

    def get(self, path: str, **params: Any) -> Any:
        return self._check(self.http.get(f"/api/v2{path}", params=params)).json()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self._check(self.http.post(f"/api/v2{path}", json=body)).json()

    def patch(self, path: str, body: dict[str, Any]) -> Any:
        return self._check(self.http.patch(f"/api/v2{path}", json=body)).json()

    def delete(self, path: str) -> None:
        self._check(self.http.delete(f"/api/v2{path}"))

    def close(self) -> None:
        self.http.close()

    # --- what the UI does ---------------------------------------------------------------

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        """A manual run, as the Trigger button makes it; returns its run id."""
        return self.post(f"/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf})["dag_run_id"]

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self.patch(f"/dags/{dag_id}", {"is_paused": paused})

    def set_pool(self, name: str, slots: int, description: str = "") -> None:
        try:
            self.patch(f"/pools/{name}", {"name": name, "slots": slots, "description": description})
        except ApiError:
            self.post("/pools", {"name": name, "slots": slots, "description": description})

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        return self.get(f"/dags/{dag_id}/dagRuns", order_by="-run_after", limit=100)["dag_runs"]

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.get(f"/dags/{dag_id}/dagRuns/{run_id}")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", limit=1000)["task_instances"]

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float, states: Iterable[str] = FINISHED,
                     alive: Any = None) -> dict[str, Any]:
        """Poll until the run reaches one of `states`; `alive()` may raise to stop early
        (a service that died)."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.dag_run(dag_id, run_id)
            if run["state"] in states:
                return run
            if alive is not None:
                alive()
            if time.monotonic() > deadline:
                tis = {(t["task_id"], t["map_index"]): t["state"] for t in self.task_instances(dag_id, run_id)}
                raise TimeoutError(f"run {run_id} still {run['state']} after {timeout:.0f} s; tasks: {tis}")
            time.sleep(2)

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1, map_index: int = -1) -> str:
        """The task's log as the UI shows it: one line per event, exceptions as type: message."""
        doc = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
                       map_index=map_index, full_content=True)
        content = doc.get("content", [])
        if isinstance(content, str):
            return content
        lines = []
        for item in content:
            if not isinstance(item, dict):
                lines.append(str(item))
                continue
            lines.append(str(item.get("event", "")))
            lines.extend(f"{e.get('exc_type')}: {e.get('exc_value')}" for e in item.get("error_detail") or [])
        return "\n".join(lines)
