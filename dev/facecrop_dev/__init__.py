"""facecrop_dev: tooling that never deploys. The sample dataset, a local S3 API, the local
stack that stands in for docker-compose, and the demo.

    samples          synthetic portraits built from a real face (scikit-image's astronaut)
    hard_sittings    hard masked sittings of two public-domain faces, true boxes known (benchmarks)
    local_s3         moto's S3 server on 127.0.0.1, reached through an Airflow connection
    local_run        the demo: `airflow dags test` on SQLite against the local S3 (scripts/demo.sh)
    local_services   PostgreSQL, Redis and a StatsD sink as local processes
    local_deploy     docker-compose's Airflow services run locally (tests/deploy, benchmarks)
    compose          docker-compose.yaml read as Compose would (variables, profiles)
    airflow_api      a small client of Airflow's REST API
    __main__         `python -m facecrop_dev samples DEST`
"""
