"""The deployment lets no one in without a login: docker-compose.yaml's SimpleAuthManager users,
with the passwords .env gives them, on the deployed API server."""

import httpx


def test_anonymous_requests_and_wrong_passwords_are_refused_and_a_login_works(stack):
    base = stack.api_url
    assert httpx.get(f"{base}/api/v2/dags").status_code == 401
    assert httpx.get(f"{base}/auth/token").status_code == 403  # no admin token for the asking
    assert httpx.post(f"{base}/auth/token", json={"username": "admin", "password": "admin"}).status_code == 401
    assert httpx.post(f"{base}/auth/token", json={"username": "", "password": ""}).status_code == 400
    for user in ("admin", "reviewer"):
        answer = httpx.post(f"{base}/auth/token", json={"username": user, "password": stack.passwords[user]})
        assert answer.status_code == 201
        dags = httpx.get(f"{base}/api/v2/dags", headers={"Authorization": f"Bearer {answer.json()['access_token']}"})
        assert dags.status_code == 200 and "facecrop_etl" in dags.text


def test_the_reviewer_sees_the_dag_but_cannot_create_connections_or_pools(stack):
    token = httpx.post(f"{stack.api_url}/auth/token", json={"username": "reviewer", "password": stack.passwords["reviewer"]})
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    connection = {"connection_id": "sneaky", "conn_type": "aws"}
    assert httpx.post(f"{stack.api_url}/api/v2/connections", json=connection, headers=headers).status_code == 403
    pool = {"name": "sneaky", "slots": 100}
    assert httpx.post(f"{stack.api_url}/api/v2/pools", json=pool, headers=headers).status_code == 403
    assert httpx.get(f"{stack.api_url}/api/v2/dags/facecrop_etl", headers=headers).status_code == 200
