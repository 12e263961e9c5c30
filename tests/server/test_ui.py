"""The chat page at GET /ui, driven in headless Chromium (Debian's chromium and chromium-driver,
through Selenium): it loads from the binary with nothing fetched elsewhere, lists the models,
streams an answer (markdown rendered, escaped), stops one, and shows a pull's progress from the
mock hub; with --api-key the page works once the key is entered. A screenshot is kept in
$EMBER_TEST_ARTIFACTS (default: the pytest temp directory)."""
import os
import pathlib
import shutil
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from ember_server import GEMMA3_FILE, SMOLLM2, SMOLLM2_FILE, EmberServer  # noqa: E402
from mock_hub import MockHub, Repo  # noqa: E402

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

SYNTHETIC = pathlib.Path(os.environ.get("EMBER_TESTDATA", pathlib.Path(__file__).parents[3] / "shared" / "testdata")) / "synthetic"


@pytest.fixture(scope="module")
def hub():
    h = MockHub()
    h.add("test/tiny", Repo({"tiny-llama-Q4_K_M.gguf": (SYNTHETIC / "tiny-llama-q4_0.gguf").read_bytes()}))
    yield h
    h.close()


@pytest.fixture(scope="module")
def server(hub, tmp_path_factory):
    with EmberServer(tmp_path_factory.mktemp("ui"), "--backend", "cpu", "--api-key", "sk-ui",
                     models=(SMOLLM2_FILE, GEMMA3_FILE), env={"HF_ENDPOINT": hub.url, "HF_TOKEN": ""}) as s:
        yield s


@pytest.fixture(scope="module")
def browser():
    if not shutil.which("chromedriver"):
        pytest.fail("chromedriver is missing: scripts/install-deps.sh installs chromium-driver")
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(arg)
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=shutil.which("chromedriver")),
                              options=options)
    yield driver
    driver.quit()


def wait(driver, predicate, timeout=60):
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: predicate(d))


def test_the_page_chats_stops_and_pulls(server, browser, tmp_path):
    browser.get(server.url + "/ui")
    assert browser.title == "ember"
    # Nothing but this server: every resource the page loaded came from it.
    origins = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert all(o.startswith(server.url) for o in origins), origins

    # The API wants the key: the model list appears once it is entered.
    browser.find_element(By.ID, "apikey").send_keys("sk-ui")
    browser.execute_script("document.getElementById('apikey').dispatchEvent(new Event('change'))")
    wait(browser, lambda d: len(Select(d.find_element(By.ID, "model")).options) >= 2)
    Select(browser.find_element(By.ID, "model")).select_by_value(SMOLLM2)
    browser.find_element(By.ID, "temperature").clear()
    browser.find_element(By.ID, "temperature").send_keys("0")

    prompt = browser.find_element(By.ID, "prompt")
    prompt.send_keys("Name three colours as a list, and show <b>bold</b> as code.")
    browser.find_element(By.ID, "send").click()
    answer = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".msg.assistant[data-state=done]"))[0]
    assert answer.find_element(By.CLASS_NAME, "content").text.strip()
    assert not answer.find_elements(By.TAG_NAME, "b")  # model text is escaped, never markup

    # Stop: a long answer ends when asked, and the page says so.
    browser.find_element(By.ID, "max_tokens").clear()
    browser.find_element(By.ID, "max_tokens").send_keys("2000")
    prompt.send_keys("Write a very long story about a dragon.")
    browser.find_element(By.ID, "send").click()
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".msg.assistant")) == 2 and
         d.find_elements(By.CSS_SELECTOR, ".msg.assistant")[1].find_element(By.CLASS_NAME, "content").text)
    browser.find_element(By.ID, "stop").click()
    stopped = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".msg.assistant[data-state=stopped]"))[0]
    text = stopped.find_element(By.CLASS_NAME, "content").text
    time.sleep(1)
    assert stopped.find_element(By.CLASS_NAME, "content").text == text  # nothing more arrives
    assert browser.find_element(By.ID, "send").is_enabled()

    # Pull: the progress bar fills and the new model is listed and chosen.
    browser.find_element(By.ID, "pull-model").send_keys("test/tiny")
    browser.find_element(By.ID, "pull").click()
    wait(browser, lambda d: d.find_element(By.ID, "pull-status").text.startswith("complete"))
    assert float(browser.find_element(By.ID, "pull-progress").get_attribute("value")) == 100
    chosen = Select(browser.find_element(By.ID, "model")).first_selected_option.get_attribute("value")
    assert "tiny-llama" in chosen

    artifacts = pathlib.Path(os.environ.get("EMBER_TEST_ARTIFACTS", tmp_path))
    artifacts.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(artifacts / "ui.png"))


def test_the_page_is_public_but_the_api_is_not(server):
    import urllib.error
    import urllib.request
    with urllib.request.urlopen(server.url + "/ui") as r:
        assert r.headers["content-type"].startswith("text/html") and b"<title>ember</title>" in r.read()
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(server.url + "/v1/models")
    assert e.value.code == 401
