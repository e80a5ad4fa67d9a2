"""The reviewer's loop inside Airflow, on the deployed API server and in headless Chromium: the
Face review page (an Airflow plugin) shows a run's doubtful crops; a reviewer redraws a face
box and marks a photo as having no usable face; the next run applies exactly those two. And
the review gate: a run over its miss-rate limits waits in Required Actions until a person
approves (publishes) or rejects it (failed, nothing published)."""

import csv
import io
import json

import httpx
import pytest

from facecrop_dev.local_deploy import DAG_ID
from facecrop_ops.config.crop import Settings
from facecrop_ops.dataset import manifest
from facecrop_ops.dataset.run_folder import CORRECTIONS_CSV, CORRECTIONS_DIR, folder_name
from facecrop_ops.vision.geometry import padded_box
from facecrop_ops.vision.imaging import cut_face, decode_rgb, encode_face

from ..browser import artifact, chromium, log_in
from .conftest import SOURCE, wait_for

BUCKET = "facecrop"


@pytest.fixture(scope="module")
def browser():
    with chromium() as driver:
        yield driver


def run_to_end(stack, conf, states=("success",)):
    api = stack.api()
    api.set_paused(DAG_ID, False)
    run_id = api.trigger(DAG_ID, {"source_uri": SOURCE, **conf})
    run = api.wait_for_run(DAG_ID, run_id, 300, alive=stack.check_alive)
    assert run["state"] in states, (run["state"], api.task_instances(DAG_ID, run_id))
    return run_id


def body(stack, key):
    return stack.s3.client().get_object(Bucket=BUCKET, Key=key)["Body"].read()


def rows_of(stack, prefix, run_id):
    return {r.source: r for r in manifest.loads(body(stack, f"{prefix}_facecrop/runs/{folder_name(run_id)}/manifest.csv").decode())}


def test_the_review_api_refuses_anyone_not_logged_in(stack):
    for path in ("/facecrop/review", "/facecrop/api/runs", "/facecrop/api/runs/x/items", "/facecrop/api/runs/x/photo?source=a"):
        assert httpx.get(stack.api_url + path).status_code == 401, path
    answer = httpx.post(stack.api_url + "/facecrop/api/runs/x/corrections", json={"source": "a", "decision": "no_face"})
    assert answer.status_code == 401


def test_a_reviewer_fixes_two_crops_in_the_ui_and_the_next_run_applies_exactly_those(stack, browser):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    prefix = "review/"
    first = run_to_end(stack, {"dest_uri": f"s3://{BUCKET}/{prefix}"})
    before = rows_of(stack, prefix, first)
    wait = WebDriverWait(browser, 30)

    # In the Airflow UI: Browse > Face review, as the reviewer.
    browser.delete_all_cookies()
    log_in(browser, stack.api_url, "reviewer", stack.passwords["reviewer"], "/plugin/face-review")
    frame = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "iframe[src*='/facecrop/review']")))
    browser.switch_to.frame(frame)
    Select(wait.until(ec.presence_of_element_located((By.ID, "run")))).select_by_value(first)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".tile img"))
    Select(browser.find_element(By.ID, "filter-kind")).select_by_visible_text("missed")
    fallback = {k for k, r in before.items() if r.status == "fallback"}

    def shown(d):  # the server filters: the tiles are redrawn when its page arrives
        sources = [t.get_attribute("data-source") for t in d.find_elements(By.CSS_SELECTOR, ".tile")]
        return set(sources) == fallback and sources

    missed = WebDriverWait(browser, 30, ignored_exceptions=[StaleElementReferenceException]).until(shown)
    redrawn = missed[0]

    # Redraw the face box of a photo MTCNN missed: drag on the photo, save.
    browser.find_element(By.CSS_SELECTOR, f".tile[data-source='{redrawn}']").click()
    photo = wait.until(ec.visibility_of_element_located((By.ID, "editor-img")))
    wait.until(lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", photo))
    scale = photo.size["width"] / browser.execute_script("return arguments[0].naturalWidth", photo)
    start = (130 * scale, 150 * scale)  # photo pixels -> screen pixels, from the image's centre
    ActionChains(browser).move_to_element_with_offset(photo, start[0] - photo.size["width"] / 2,
                                                       start[1] - photo.size["height"] / 2) \
        .click_and_hold().move_by_offset(120 * scale, 150 * scale).release().perform()
    wait.until(ec.element_to_be_clickable((By.ID, "save-box"))).click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "saved: face box by reviewer"))

    # Mark another photo as having no usable face.
    Select(browser.find_element(By.ID, "filter-kind")).select_by_visible_text("all")
    everything = WebDriverWait(browser, 30, ignored_exceptions=[StaleElementReferenceException]).until(
        lambda d: (s := [t.get_attribute("data-source") for t in d.find_elements(By.CSS_SELECTOR, ".tile")])
        and not set(s) <= fallback and s)  # the least confident detections too, once the page arrives
    excluded = next(s for s in everything if s != redrawn and s.startswith("train/"))
    browser.find_element(By.CSS_SELECTOR, f".tile[data-source='{excluded}']").click()
    wait.until(ec.element_to_be_clickable((By.ID, "no-face"))).click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "saved: no usable face by reviewer"))
    browser.find_element(By.CSS_SELECTOR, f".tile[data-source='{redrawn}']").click()
    browser.switch_to.default_content()
    browser.save_screenshot(str(artifact("face-review.png")))

    saved = sorted(o["Key"] for o in stack.s3.client().list_objects_v2(Bucket=BUCKET, Prefix=prefix + CORRECTIONS_DIR + "/")["Contents"])
    kept = [json.loads(body(stack, key)) for key in saved]  # one object per decision, oldest first
    assert [(d["source"], d["decision"], d["reviewer"]) for d in kept] == [(redrawn, "box", "reviewer"), (excluded, "no_face", "reviewer")]
    box = tuple(kept[0]["box"])
    assert box[2] - box[0] == pytest.approx(120, abs=3) and box[3] - box[1] == pytest.approx(150, abs=3)

    # The next (incremental) run crops exactly those two again; every other face is reused.
    second = run_to_end(stack, {"dest_uri": f"s3://{BUCKET}/{prefix}"})
    after = rows_of(stack, prefix, second)
    assert {k for k, r in after.items() if not r.reused} == {redrawn, excluded}
    assert (after[redrawn].method, after[redrawn].box) == ("manual", box)
    assert after[excluded].status == "excluded" and not after[excluded].output
    photo_bytes = stack.s3.client().get_object(Bucket=BUCKET, Key="dataset/" + redrawn)["Body"].read()
    rgb = decode_rgb(photo_bytes)
    s = Settings()
    expected = encode_face(cut_face(rgb, padded_box(box, rgb.shape[1], rgb.shape[0], s.margins),
                                    (s.output_width, s.output_height), s.interpolation), after[redrawn].output, s.jpeg_quality)
    assert body(stack, prefix + after[redrawn].output) == expected  # the face is a crop of the corrected box
    published = body(stack, prefix + "train_face.csv").decode()
    assert excluded.replace("/images/", "/faces/") not in published and redrawn.replace("/images/", "/faces/") in published
    rejects = body(stack, f"{prefix}_facecrop/runs/{folder_name(second)}/rejects.csv").decode()
    assert f"{excluded},marked 'no usable face' by reviewer at" in rejects
    face_keys = {o["Key"] for o in stack.s3.client().list_objects_v2(Bucket=BUCKET, Prefix=prefix + "train/faces/")["Contents"]}
    assert prefix + excluded.replace("/images/", "/faces/") not in face_keys  # its old face was removed
    doc = json.loads(body(stack, f"{prefix}_facecrop/runs/{folder_name(second)}/metrics.json"))
    assert doc["classes"]["all"]["corrected"] == 2
    listed = list(csv.DictReader(io.StringIO(body(stack, prefix + CORRECTIONS_CSV).decode())))  # the run's plan listed them
    assert [(r["source"], r["decision"], r["reviewer"]) for r in listed] == [(redrawn, "box", "reviewer"), (excluded, "no_face", "reviewer")]


def test_the_review_api_answers_abuse_with_clear_refusals_and_frames_only_in_airflow(stack):
    """Through the deployed API server: a box of booleans is refused (pydantic would have made
    numbers of them), a run whose connection does not exist is a 502 naming the fix, not a
    500, and the page may only be framed by the Airflow UI itself."""
    token = httpx.post(f"{stack.api_url}/auth/token", json={"username": "reviewer", "password": stack.passwords["reviewer"]})
    client = httpx.Client(base_url=stack.api_url, headers={"Authorization": f"Bearer {token.json()['access_token']}"})
    page = client.get("/facecrop/review")
    assert page.headers["x-frame-options"] == "SAMEORIGIN" and "frame-ancestors 'self'" in page.headers["content-security-policy"]
    prefix = "abuse/"
    run_id = run_to_end(stack, {"dest_uri": f"s3://{BUCKET}/{prefix}"})
    # a photo the page shows (a miss): only those can be looked at or decided on
    photo = next(k for k, r in rows_of(stack, prefix, run_id).items() if r.status == "fallback")
    answer = client.post(f"/facecrop/api/runs/{run_id}/corrections", json={"source": photo, "decision": "box",
                                                                           "box": [True, True, 300, 400]})
    assert answer.status_code == 422 and "four numbers" in answer.json()["detail"]
    huge = client.get(f"/facecrop/api/runs/{run_id}/photo", params={"source": "x" * 20_000})
    assert huge.status_code == 404 and len(huge.text) < 400  # a request is never echoed whole
    lost = run_to_end(stack, {"dest_uri": f"s3://{BUCKET}/{prefix}", "aws_conn_id": "no_such_connection"}, ("failed",))
    for path in (f"/facecrop/api/runs/{lost}/items", f"/facecrop/api/runs/{lost}/photo?source={photo}"):
        answer = client.get(path)
        assert answer.status_code == 502 and "names no Airflow connection" in answer.json()["detail"], path
    assert not stack.s3.client().list_objects_v2(Bucket=BUCKET, Prefix=prefix + CORRECTIONS_DIR + "/").get("KeyCount")


def test_a_run_over_its_limits_waits_for_a_person_approve_publishes_reject_publishes_nothing(stack, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    api = stack.api()
    api.set_paused(DAG_ID, False)
    gated = {"review_gate": True, "miss_rate_limits": {"all": 0.0}}

    def waiting(run_id):
        return [t for t in api.task_instances(DAG_ID, run_id) if t["task_id"] == "review_gate" and t["state"] == "awaiting_input"]

    # Approved in the UI: the run publishes and ends success.
    approved = api.trigger(DAG_ID, {"source_uri": SOURCE, "dest_uri": f"s3://{BUCKET}/gate/", **gated})
    wait_for(lambda: waiting(approved), "the run to wait for a review", 300)
    assert not stack.s3.client().list_objects_v2(Bucket=BUCKET, Prefix="gate/train_face.csv").get("KeyCount")
    browser.delete_all_cookies()
    log_in(browser, stack.api_url, "admin", stack.passwords["admin"], "/required_actions")
    wait = WebDriverWait(browser, 30)
    wait.until(ec.presence_of_element_located((By.XPATH, f"//*[contains(text(), 'miss rates over the limits in {approved}')]")))
    browser.save_screenshot(str(artifact("required-actions.png")))
    browser.get(f"{stack.api_url}/dags/{DAG_ID}/runs/{approved}/tasks/review_gate/required_actions")
    link = wait.until(ec.presence_of_element_located((By.XPATH, "//a[contains(@href, '/facecrop/review?run_id=')]")))
    gate_page = browser.current_url
    # The link shows what the person is asked about, before anything is published.
    browser.get(link.get_attribute("href"))
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".tile img"))
    assert browser.find_element(By.ID, "run").get_attribute("value") == approved
    shown = {t.get_attribute("data-source") for t in browser.find_elements(By.CSS_SELECTOR, ".tile")}
    assert shown and not stack.s3.client().list_objects_v2(Bucket=BUCKET, Prefix="gate/train_face.csv").get("KeyCount")
    browser.save_screenshot(str(artifact("gate-review.png")))
    browser.get(gate_page)
    wait.until(ec.element_to_be_clickable((By.XPATH, "//button[normalize-space()='Approve']"))).click()
    assert api.wait_for_run(DAG_ID, approved, 300, alive=stack.check_alive)["state"] == "success"
    assert body(stack, "gate/train_face.csv")

    # Rejected (through the REST API, as the UI's button does): failed, nothing published.
    rejected = api.trigger(DAG_ID, {"source_uri": SOURCE, "dest_uri": f"s3://{BUCKET}/gate-rejected/", **gated})
    wait_for(lambda: waiting(rejected), "the run to wait for a review", 300)
    api.patch(f"/dags/{DAG_ID}/dagRuns/{rejected}/taskInstances/review_gate/-1/hitlDetails", {"chosen_options": ["Reject"]})
    assert api.wait_for_run(DAG_ID, rejected, 300, alive=stack.check_alive)["state"] == "failed"
    listed = stack.s3.client().list_objects_v2(Bucket=BUCKET, Prefix="gate-rejected/")
    assert not [o["Key"] for o in listed.get("Contents", []) if o["Key"].endswith("_face.csv")]
