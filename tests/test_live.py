"""``dataprice live``: the market round by round in a real browser, on a loopback port.

The server runs in a thread on a free port of 127.0.0.1; headless Chromium (Debian's, as
for the reports) opens the page, steps the market and changes the learning rate; the plots
must follow and the console must stay clean. The API refuses bad requests in one line and
the server refuses non-loopback addresses."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from dataprice.errors import ScenarioError
from dataprice.live import LiveMarket, serve
from dataprice.report.browser import browser_available
from dataprice.scenario import load_scenario, small_scenario

ROOT = Path(__file__).resolve().parents[1]
NO_BROWSER = browser_available()


@pytest.fixture(scope="module")
def server():
    scenario = small_scenario(load_scenario(ROOT / "scenarios" / "learning_sellers.yaml"))
    live = LiveMarket(scenario)
    srv = serve(live, "127.0.0.1", 0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv, f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def _post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_the_api_steps_every_rule_in_lockstep_as_dataprice_run_does(server):
    """Five rounds here are the run's first five rounds (same seeds), under every rule."""
    from dataprice.experiment import run_scenario

    srv, base = server
    scenario = srv.live.scenario
    _post(base + "/api/reset", {"strategy": scenario.bidding.strategy, "learning_rate": scenario.bidding.learning_rate})
    status, state = _post(base + "/api/step", {"rounds": 5})
    assert status == 200 and state["round"] == 5 and set(state["history"]) == set(state["rules"])
    run = run_scenario(scenario.model_copy(update={"rounds": 5, "replicates": 1}), progress=False)
    for rule in state["rules"]:
        welfare = [o.welfare for o in run.replicates[0].outcomes[rule]]
        assert state["history"][rule]["welfare"] == pytest.approx(welfare, rel=1e-12), rule
    for body, part in (({"rounds": 0}, "rounds must be an integer"), ({"rounds": "5"}, "rounds must be an integer")):
        status, error = _post(base + "/api/step", body)
        assert status == 400 and part in error["error"]
    status, error = _post(base + "/api/reset", {"strategy": "os.system"})
    assert status == 400 and "strategy must be one of" in error["error"]
    status, error = _post(base + "/api/reset", {"learning_rate": -1})
    assert status == 400 and "learning_rate" in error["error"]
    with urllib.request.urlopen(base + "/api/state", timeout=30) as response:
        assert json.loads(response.read())["round"] == 5  # bad requests changed nothing
    with pytest.raises(ScenarioError, match="loopback address only"):
        serve(srv.live, "0.0.0.0", 0)


@pytest.mark.skipif(NO_BROWSER is not None, reason=f"browser check skipped: {NO_BROWSER}")
def test_the_page_updates_its_plots_as_the_market_steps(server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from dataprice.report.browser import _driver

    srv, base = server
    _post(base + "/api/reset", {"strategy": "hedge", "learning_rate": 2.0})
    with _driver() as driver:
        driver.get(base + "/")
        wait = WebDriverWait(driver, 20)
        wait.until(lambda d: d.find_element(By.ID, "round").text == "0" and d.find_elements(By.CSS_SELECTOR, "#bids rect"))
        bars_before = len(driver.find_elements(By.CSS_SELECTOR, "#bids rect.bar"))  # costs only: no reports yet
        driver.find_element(By.ID, "step").click()
        wait.until(lambda d: d.find_element(By.ID, "round").text == "1")
        assert len(driver.find_elements(By.CSS_SELECTOR, "#bids rect.bar")) > bars_before  # the reports appeared
        driver.find_element(By.ID, "step10").click()
        wait.until(lambda d: d.find_element(By.ID, "round").text == "11")
        lines = driver.find_elements(By.CSS_SELECTOR, "#welfare polyline.series")
        assert len(lines) == len(srv.live.rules)
        assert all(len(line.get_attribute("points").split()) == 11 for line in lines)
        # another learning rate restarts the rounds; another rule is shown without a request
        rate = driver.find_element(By.ID, "rate")
        rate.clear()
        rate.send_keys("0.5")
        driver.find_element(By.ID, "apply").click()
        wait.until(lambda d: d.find_element(By.ID, "round").text == "0")
        assert srv.live.learning_rate == 0.5
        from selenium.webdriver.support.ui import Select

        Select(driver.find_element(By.ID, "rule")).select_by_value("vcg")
        assert driver.find_element(By.CSS_SELECTOR, ".rulename").text == "vcg"
        resources = driver.execute_script("return performance.getEntriesByType('resource').map(r => r.name)")
        assert all(r.startswith(base) for r in resources), resources  # nothing from elsewhere
        errors = [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    assert errors == []
