"""What the deployment calls things, in one place: the DAG file, the task bodies, the review
plugin and the tests all read these."""

DAG_ID = "facecrop_etl"
# The Face review plugin's app on Airflow's API server, and its page: the review gate links it.
REVIEW_PREFIX = "/facecrop"
REVIEW_PAGE = f"{REVIEW_PREFIX}/review"
