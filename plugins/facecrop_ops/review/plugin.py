"""The Airflow plugin: "Face review" in the UI's Browse menu, its page and API on the API server.

Registered through the `airflow.plugins` entry point of the facecrop-ops package (see
pyproject.toml), so every Airflow that installs the package has it; plugins/.airflowignore
keeps the plugins folder's own scan away from the library.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from facecrop_ops.config.names import REVIEW_PAGE, REVIEW_PREFIX
from facecrop_ops.review.app import app


class FaceReviewPlugin(AirflowPlugin):
    name = "facecrop_review"
    fastapi_apps = [{"app": app, "url_prefix": REVIEW_PREFIX, "name": "facecrop: Face review"}]
    # Shown inside the UI (an iframe at /plugin/face-review), under Browse.
    external_views = [{"name": "Face review", "href": REVIEW_PAGE, "destination": "nav", "url_route": "face-review",
                       "category": "browse"}]
