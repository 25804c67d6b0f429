"""The built book in a real browser: headless Chromium opens every page with no console error and
no broken image, and screenshots of the key pages are kept in ``test-artifacts/screenshots/``.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them) and selenium (a
dev dependency); without them the tests are skipped with that reason. The book is served over
HTTP from 127.0.0.1. There is no internet here, so resources the theme fetches from public CDNs
(MathJax, fonts) fail to load: such network errors for *other* hosts are not counted; every
error of the page's own scripts, and every failed request to the book itself, is.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from pathlib import Path

import pytest

from drnet_lib.results import REPO_ROOT

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
if not (CHROMIUM and DRIVER):
    pytest.skip("headless Chromium is not installed: .ci/run installs Debian's chromium and chromium-driver "
                "(apt-get install chromium chromium-driver)", allow_module_level=True)

SCREENSHOTS = REPO_ROOT / "test-artifacts" / "screenshots"
KEY_PAGES = ("book/intro", "book/report", "results/cpu/mnist_seed0", "results/cpu/kth_seed0", "book/kth_results",
             "book/kth_diagnostics",
             "book/deviations")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site(html):
    handler = functools.partial(_Quiet, directory=str(html))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,1600"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _pages(html: Path) -> list[str]:
    return sorted(str(p.relative_to(html).with_suffix("")) for p in html.rglob("*.html")
                  if "_static" not in p.parts and p.name not in ("genindex.html", "search.html"))


def _open(browser, url: str) -> list[dict]:
    """Load ``url``, wait until it is complete, return its console messages."""
    browser.get_log("browser")                                    # drop the previous page's
    browser.get(url)
    browser.execute_script("return document.readyState")
    return browser.get_log("browser")


def _own_errors(messages: list[dict], site: str) -> list[str]:
    errors = []
    for m in messages:
        if m["level"] != "SEVERE":
            continue
        text = m["message"]
        if "Failed to load resource" in text or "net::ERR_" in text:
            if not text.split(" ", 1)[0].startswith(site):         # a CDN, unreachable offline
                continue
        errors.append(text)
    return errors


def test_every_page_opens_without_console_errors_or_broken_images(html, site, browser):
    pages = _pages(html)
    assert len(pages) >= 10
    for page in pages:
        errors = _own_errors(_open(browser, f"{site}{page}.html"), site)
        assert not errors, (page, errors)
        broken = browser.execute_script(
            "return Array.from(document.images).filter(i => i.complete && i.naturalWidth === 0"
            " && i.src.startsWith(location.origin)).map(i => i.src)")
        assert not broken, (page, broken)
        assert "Traceback (most recent call last)" not in browser.find_element("tag name", "body").text, page


def test_key_pages_are_screenshotted(site, browser):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for page in KEY_PAGES:
        _open(browser, f"{site}{page}.html")
        height = browser.execute_script("return Math.min(document.body.scrollHeight, 6000)")
        browser.set_window_size(1280, max(900, height))
        path = SCREENSHOTS / (page.replace("/", "_") + ".png")
        assert browser.save_screenshot(str(path)), page
        assert path.stat().st_size > 20_000, (page, "a blank page?")
    browser.set_window_size(1280, 1600)
