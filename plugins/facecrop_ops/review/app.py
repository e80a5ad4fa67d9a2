"""The Face review page and its API, a FastAPI app the plugin mounts on Airflow's API server.

FastAPI plugin routes are open to anyone unless they say otherwise: every route here requires
an Airflow login with access to the facecrop_etl DAG (reading) or to its runs (recording a
decision; a viewer may look, not decide). The page is served from the same origin as the UI,
so the browser sends the login's token cookie with every request.
"""

from __future__ import annotations

import functools
from typing import Any

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel

from facecrop_ops.config.names import DAG_ID, REVIEW_PREFIX
from facecrop_ops.dataset.corrections import CorrectionError
from facecrop_ops.review import service
from facecrop_ops.s3io import StorageError

app = FastAPI(title="facecrop: Face review", docs_url=None, redoc_url=None, openapi_url=None)
READ = [Depends(requires_access_dag("GET", param_dag_id=DAG_ID))]
DECIDE = [Depends(requires_access_dag("PUT", DagAccessEntity.RUN, param_dag_id=DAG_ID))]


class Decision(BaseModel):
    source: str
    decision: str
    # Taken as sent and checked by corrections.make: pydantic would turn [true, true, 300, 400] into numbers.
    box: list[Any] | None = None


def _guarded(fn: Any, *args: Any) -> Any:
    """The service's refusals as HTTP answers a page can show."""
    try:
        return fn(*args)
    except service.NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except CorrectionError as exc:
        raise HTTPException(422, str(exc)) from None
    except service.Changed as exc:
        raise HTTPException(409, str(exc)) from None
    except service.TooLarge as exc:
        raise HTTPException(413, str(exc)) from None
    except StorageError as exc:
        raise HTTPException(502, str(exc)) from None


def _run(run_id: str) -> tuple[service.Run, Any]:
    run = _guarded(service.find_run, run_id)
    return run, _guarded(service.store_for, run)


# The page may be framed by the Airflow UI (its Browse > Face review view) and nothing else.
FRAMING = {"X-Frame-Options": "SAMEORIGIN", "Content-Security-Policy": "frame-ancestors 'self'"}


@functools.cache
def _template() -> Any:
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("facecrop_ops.review", "templates"), autoescape=select_autoescape(default=True))
    return env.get_template("review.html.j2")


@app.get("/review", response_class=HTMLResponse, dependencies=READ)
def page(user: GetUserDep) -> HTMLResponse:
    return HTMLResponse(_template().render(user=user.get_name(), api=f"{REVIEW_PREFIX}/api"), headers=FRAMING)


@app.get("/api/runs", dependencies=READ)
def runs() -> list[dict[str, str]]:
    return [{"run_id": r.run_id, "state": r.state, "run_after": r.run_after, "source_uri": r.params.source.uri,
             "dest_uri": r.params.dest.uri} for r in service.runs()]


@app.get("/api/runs/{run_id}/items", dependencies=READ)
def items(run_id: str, page: int = Query(0, ge=0), kind: str | None = None, cls: str | None = Query(None, alias="class"),
          method: str | None = None) -> dict[str, Any]:
    """A page of the run's review items, filtered on the server: the first screen of a run of a
    million photos reads what it shows, not the manifest."""
    return _guarded(service.items, *_run(run_id), page, kind or None, cls or None, method or None)


@app.get("/api/runs/{run_id}/photo", dependencies=READ)
def photo(run_id: str, source: str = Query(...)) -> Response:
    """A photo of the run, upright as the pipeline sees it (the page draws boxes in its
    pixels); never any other object."""
    data, media_type = _guarded(service.photo, *_run(run_id), source)
    return Response(data, media_type=media_type,
                    headers={"Cache-Control": "private, max-age=600", "X-Content-Type-Options": "nosniff"})


@app.post("/api/runs/{run_id}/corrections", dependencies=DECIDE)
def decide(run_id: str, body: Decision, user: GetUserDep) -> dict[str, Any]:
    made = _guarded(service.record, *_run(run_id), body.source, body.decision, body.box, user.get_name())
    return {"id": made.id, "source": made.source, "decision": made.decision, "box": made.box, "reviewer": made.reviewer,
            "time": made.time}
