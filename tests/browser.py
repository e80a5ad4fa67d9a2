"""Headless Chromium for UI and report tests: Debian's chromium and chromedriver, installed
with apt-get when missing, driven by Selenium. Nothing is downloaded by Selenium itself."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from facecrop_dev.local_services import CannotInstall, ensure_debian_packages

from .needs import cannot_install

REPO = Path(__file__).resolve().parents[1]
# Screenshots and pages the tests keep for people to look at (not committed).
ARTIFACTS = Path(os.environ.get("FACECROP_TEST_ARTIFACTS", REPO / "test-artifacts"))

# No background networking: this machine's network is closed and Chromium would keep trying.
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1400,1600")


@contextmanager
def chromium() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    try:
        ensure_debian_packages({"chromium": "chromium", "chromedriver": "chromium-driver"})
    except CannotInstall as exc:
        cannot_install("no headless browser", exc)
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="facecrop-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def artifact(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name


def log_in(driver, base_url: str, username: str, password: str, then: str = "/") -> None:
    """Log in on Airflow's login page as a person does (the UI keeps the session's token in a
    cookie), then open `then`."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, 30)
    driver.get(f"{base_url}/auth/login")
    wait.until(ec.visibility_of_element_located((By.NAME, "username"))).send_keys(username)
    driver.find_element(By.NAME, "password").send_keys(password, Keys.ENTER)
    wait.until(lambda d: d.get_cookie("_token") is not None)
    driver.get(f"{base_url}{then}")
