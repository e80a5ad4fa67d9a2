"""The trigger form in a real browser (headless Chromium), on the deployed API server."""

import pytest

from facecrop_dev.local_deploy import DAG_ID

from ..browser import artifact, chromium, log_in
from .conftest import SOURCE, assert_cropped, wait_for

SECTIONS = ["Dataset", "Crop geometry", "Detection (MTCNN)", "Sharding and checks"]


@pytest.fixture(scope="module")
def browser():
    with chromium() as driver:
        yield driver


def _type(browser, name: str, text: str) -> None:
    """Replace a React-controlled field's value the way a person does: select all, type."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    field = browser.find_element(By.NAME, name)
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", field)
    field.click()
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(Keys.BACKSPACE)
    field.send_keys(text)
    assert field.get_attribute("value") == text


def _click(browser, element) -> None:
    """Scroll it into view and click once it is still: the sections animate open and shift it."""
    from selenium.common.exceptions import ElementClickInterceptedException, ElementNotInteractableException
    from selenium.webdriver.support.ui import WebDriverWait

    def clicked(_) -> bool:
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
        try:
            element.click()
        except (ElementClickInterceptedException, ElementNotInteractableException):
            return False
        return True

    WebDriverWait(browser, 15, poll_frequency=0.5).until(clicked)


def _label(dialog, field_id: str) -> str:
    from selenium.webdriver.common.by import By

    return dialog.find_element(By.XPATH, f".//*[@name='{field_id}']/ancestor::*[@role='group'][1]//label").text


def test_the_trigger_form_shows_sections_and_defaults_and_its_run_succeeds(stack, browser):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 30)
    browser.delete_all_cookies()
    browser.get(f"{stack.api_url}/dags/{DAG_ID}")
    wait.until(ec.url_contains("/auth/login"))  # nobody gets in without logging in
    log_in(browser, stack.api_url, "admin", stack.passwords["admin"], f"/dags/{DAG_ID}")
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "button[aria-label='Trigger Dag']"))).click()
    dialog = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "[data-scope=dialog][role=dialog]")))
    buttons = {b.text: b for b in dialog.find_elements(By.TAG_NAME, "button") if b.text}
    assert [s for s in SECTIONS if s in buttons] == SECTIONS

    # The two URIs come first, in the section the form opens with; only the dataset root is required.
    source = wait.until(ec.visibility_of_element_located((By.NAME, "element_source_uri")))
    assert source.get_attribute("value") == SOURCE  # FACECROP_SOURCE_URI, from docker-compose.yaml
    assert _label(dialog, "element_source_uri").rstrip().endswith("*")
    assert "*" not in _label(dialog, "element_dest_uri")
    dest_uri = "s3://facecrop/trigger-form/"
    _type(browser, "element_source_uri", SOURCE)
    _type(browser, "element_dest_uri", dest_uri)
    dialog.screenshot(str(artifact("trigger-form.png")))

    # Every other param sits in its section with its default.
    _click(browser, buttons["Dataset"])
    csvs = wait.until(ec.visibility_of_element_located((By.NAME, "element_csv_uris")))
    assert csvs.get_attribute("value") == "" and "*" not in _label(dialog, "element_csv_uris")
    assert dialog.find_element(By.NAME, "element_path_column").get_attribute("value") == "path"
    _click(browser, buttons["Crop geometry"])
    assert wait.until(ec.visibility_of_element_located((By.NAME, "element_margin_top"))).get_attribute("value") == "60"
    assert dialog.find_element(By.NAME, "element_output_width").get_attribute("value") == "210"
    _click(browser, buttons["Trigger"])
    try:  # the UI opens the new run's page
        WebDriverWait(browser, 20).until(ec.url_contains("/runs/"))
    except TimeoutException:  # on a loaded machine a click can land while the sections still animate
        _click(browser, buttons["Trigger"])

    def our_run():
        return [r for r in stack.api().dag_runs(DAG_ID) if (r.get("conf") or {}).get("dest_uri") == dest_uri]

    run = wait_for(our_run, "the run the form triggered", 30)[0]
    assert run["run_type"] == "manual"
    run = stack.api().wait_for_run(DAG_ID, run["dag_run_id"], 240, alive=stack.check_alive)
    assert run["state"] == "success"
    assert run["conf"]["source_uri"] == SOURCE
    assert_cropped(stack, dest_uri, run["dag_run_id"])
