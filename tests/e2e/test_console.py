"""The web console in a real browser: Debian's chromium, driven headless by Selenium through
chromedriver, against the real gateway, orchestrator and worker with API keys on. Each test
leaves a screenshot under $TASKLOOM_TEST_ARTIFACTS/console (default test-artifacts/console).
Chromium missing is a failure, not a skip: `make deps` installs it.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait

from taskloom.sdk.localstack import Ports, Stack, StackConfig

REPO = Path(__file__).resolve().parents[2]
KEYS = {"acme": "console-key-acme", "globex": "console-key-globex"}
ARTIFACTS = Path(os.environ.get("TASKLOOM_TEST_ARTIFACTS", REPO / "test-artifacts")) / "console"
# Generous: a bound for a loaded machine, not a speed requirement.
WAIT_SECONDS = 90


@pytest.fixture(scope="module")
def console_stack(
    local_processes: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    cfg = StackConfig(
        bin_dir=REPO / "bin",
        state_dir=tmp_path_factory.mktemp("console-stack"),
        ports=Ports.random(),
        only=("orchestrator", "worker", "gateway"),
        env_overrides={
            "gateway": {"TASKLOOM_API_KEYS": ",".join(f"{k}={t}" for t, k in KEYS.items())},
            "worker": {
                "TASKLOOM_SIM_LATENCY_MS": "20",
                "TASKLOOM_SIM_TOKENS_PER_SECOND": "0",
                "TASKLOOM_CACHE_ADDR": "",
                "TASKLOOM_METRICS_ADDR": "",
            },
        },
    )
    with Stack(cfg) as running:
        yield running


def _program(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: `make deps` installs chromium and chromium-driver")
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = _program("chromium")
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(_program("chromedriver")))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def page(
    browser: WebDriver, console_stack: Stack, request: pytest.FixtureRequest
) -> Iterator[WebDriver]:
    """The browser at the console with no key stored; a screenshot of it after the test."""
    browser.get(f"{console_stack.gateway_url}/console/")
    browser.execute_script("localStorage.clear()")
    browser.get(f"{console_stack.gateway_url}/console/#/tasks")
    yield browser
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / f"{request.node.name}.png"))


def wait_for(driver: WebDriver, css: str, text: str = "") -> None:
    """Until an element matching css is shown (containing text, when given)."""
    # The console re-renders as events arrive: an element found may be replaced before it is read.
    WebDriverWait(driver, WAIT_SECONDS, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: any(
            e.is_displayed() and text in e.text for e in d.find_elements(By.CSS_SELECTOR, css)
        ),
        f"no {css} showing {text!r}",
    )


def use_key(driver: WebDriver, tenant: str) -> None:
    field = driver.find_element(By.ID, "api-key")
    field.clear()
    field.send_keys(KEYS[tenant])
    driver.find_element(By.ID, "key-save").click()


def go(driver: WebDriver, hash_route: str) -> None:
    driver.execute_script("location.hash = arguments[0]", hash_route)


def rest(stack: Stack, tenant: str) -> httpx.Client:
    return httpx.Client(base_url=stack.gateway_url, headers={"X-API-Key": KEYS[tenant]}, timeout=30)


def submit_as_acme(stack: Stack, prompt: str) -> str:
    """The id of an assistant task that acme submitted through REST."""
    with rest(stack, "acme") as client:
        created = client.post("/v1/tasks", json={"agent": "assistant", "input": prompt})
    assert created.status_code == 202, created.text
    task_id: str = created.json()["id"]
    return task_id


def test_console_is_served_outside_the_api_and_needs_no_build(console_stack: Stack) -> None:
    with httpx.Client(base_url=console_stack.gateway_url) as client:
        assert client.get("/console").headers["location"] == "/console/"
        page_html = client.get("/console/")
        script = client.get("/console/console.js")
        spec = client.get("/openapi.json").json()
    assert page_html.status_code == 200 and "console.js" in page_html.text
    assert script.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    assert not [path for path in spec["paths"] if path.startswith("/console")]


def test_without_a_key_the_console_shows_the_gateways_401(page: WebDriver) -> None:
    wait_for(page, "#problem", "401")
    assert "API key is required" in page.find_element(By.ID, "problem").text


def test_a_task_submitted_in_the_console_streams_its_tool_calls_and_answer(
    page: WebDriver, console_stack: Stack
) -> None:
    use_key(page, "acme")
    go(page, "#/submit")
    wait_for(page, "#submit-form")
    Select(page.find_element(By.ID, "submit-agent")).select_by_value("toolsmith")
    page.find_element(By.ID, "submit-input").send_keys("6 * 7?")
    page.find_element(By.ID, "submit-task").click()
    wait_for(page, "#task-status", "succeeded")

    task_id = page.execute_script("return location.hash").removeprefix("#/tasks/")
    with rest(console_stack, "acme") as client:
        task = client.get(f"/v1/tasks/{task_id}").json()
    calls = [e.text for e in page.find_elements(By.CSS_SELECTOR, "#stream .tool-call strong")]
    results = page.find_elements(By.CSS_SELECTOR, "#stream .tool-result")
    assert task["status"] == "succeeded" and task["tenant"] == "acme"
    assert calls == ["Tool call: calculator", "Tool call: python"]
    assert len(results) == 2
    assert all("failed" not in (r.get_attribute("class") or "") for r in results)
    assert page.find_element(By.ID, "answer").text == task["result"]["text"].strip()


def test_the_tasks_list_filters_and_shows_only_the_keys_tenant(
    page: WebDriver, console_stack: Stack
) -> None:
    task_id = submit_as_acme(console_stack, "listed")

    use_key(page, "acme")
    go(page, "#/tasks?agent=assistant")
    wait_for(page, f'tr[data-task-id="{task_id}"]')
    agents = {
        row.find_elements(By.TAG_NAME, "td")[1].text
        for row in page.find_elements(By.CSS_SELECTOR, "#tasks-table tr[data-task-id]")
    }
    assert agents == {"assistant"}
    assert page.find_element(By.ID, "filter-agent").get_attribute("value") == "assistant"

    use_key(page, "globex")
    wait_for(page, "#tasks-table")
    assert not page.find_elements(By.CSS_SELECTOR, f'tr[data-task-id="{task_id}"]')
    go(page, f"#/tasks/{task_id}")
    wait_for(page, "#problem", "404")


WORKFLOW_YAML = """\
name: console-dag
mode: dag
steps:
  - {id: a, agent: assistant, input: start}
  - {id: b, agent: assistant, input: "b {{ steps.a.output.model }}", depends_on: [a]}
  - {id: c, agent: assistant, input: "c {{ steps.a.output.model }}", depends_on: [a]}
  - {id: d, agent: assistant, input: join, depends_on: [b, c]}
"""


def test_a_yaml_workflow_run_from_the_console_draws_its_dag_and_step_states(
    page: WebDriver, console_stack: Stack
) -> None:
    use_key(page, "acme")
    go(page, "#/workflows")
    wait_for(page, "#workflow-form")
    page.find_element(By.ID, "workflow-spec").send_keys(WORKFLOW_YAML)
    page.find_element(By.ID, "submit-workflow").click()
    wait_for(page, "#workflow-status", "succeeded")

    columns = [
        [step.get_attribute("id") for step in level.find_elements(By.CLASS_NAME, "step")]
        for level in page.find_elements(By.CSS_SELECTOR, "#dag .dag-level")
    ]
    assert columns == [["step-a"], ["step-b", "step-c"], ["step-d"]]
    states = {
        step.get_attribute("id"): step.get_attribute("data-status")
        for step in page.find_elements(By.CSS_SELECTOR, "#dag .step")
    }
    assert set(states.values()) == {"succeeded"}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.save_screenshot(str(ARTIFACTS / "workflow_dag.png"))

    workflow_id = page.execute_script("return location.hash").removeprefix("#/workflows/")
    go(page, "#/workflows?status=succeeded")
    wait_for(page, f'tr[data-workflow-id="{workflow_id}"]', "console-dag")


def test_agents_and_usage_pages_show_the_catalog_and_the_tenants_usage(
    page: WebDriver, console_stack: Stack
) -> None:
    submit_as_acme(console_stack, "counted")
    with rest(console_stack, "acme") as client:
        # Usage rolls up as tasks finish: wait (through REST) until acme has a row.
        deadline = time.monotonic() + WAIT_SECONDS
        while not client.get("/v1/usage").json()["rows"]:
            assert time.monotonic() < deadline, "no usage for acme"
            time.sleep(0.1)
    use_key(page, "acme")
    go(page, "#/agents")
    wait_for(page, 'tr[data-agent="toolsmith"]', "calculator")
    go(page, "#/usage")
    wait_for(page, "#usage-table td", "acme")
    assert page.find_elements(By.XPATH, '//table[@id="usage-table"]//th[text()="cost_usd"]')
