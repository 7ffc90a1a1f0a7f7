"""The dashboard pages in a real headless Chromium (Selenium): every page loads offline, every chart is drawn
(one SVG per chart, one point per run, a line, axes, the threshold), the one regressed metric is flagged and
the others not, and the browser console has no error.

Chromium is Debian's ``chromium`` + ``chromium-driver``; ``tests/_setup/ensure_chromium.sh`` installs them
when they are missing and we are root (``make test`` runs it first; the fixture runs it too).  The test skips
only when they cannot be installed.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.verify._history_docs import CASE, CHECK, FACT, make_doc

from opendrp.verify.dashboard import case_page_name, write_dashboard
from opendrp.verify.history import append_run

MAIN, OTHER = "HSC/runs/drp", "HSC/runs/other"
RUN_IDS = {MAIN: [1, 2, 3], OTHER: [4, 5]}  # appended in this order by the fixture
RUNS = {c: len(ids) for c, ids in RUN_IDS.items()}
ENSURE = Path(__file__).resolve().parents[1] / "_setup" / "ensure_chromium.sh"


def _browser_paths() -> tuple[str | None, str | None]:
    browser = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    return browser, shutil.which("chromedriver")


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="selenium not installed (pip install -e .[dev])"
    )
    browser, chromedriver = _browser_paths()
    if browser is None or chromedriver is None:
        try:
            subprocess.run(["bash", str(ENSURE)], check=False)
        except OSError:  # no bash: nothing can be installed either
            pass
        browser, chromedriver = _browser_paths()
    if browser is None or chromedriver is None:
        pytest.skip(
            "Chromium and chromedriver are not installed and could not be installed "
            "(tests/_setup/ensure_chromium.sh needs root and apt-get; "
            "apt-get install chromium chromium-driver)"
        )
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.add_argument("--window-size=1300,1300")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    yield drv
    drv.quit()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three runs of MAIN (PA1 g 10 -> 9.5 -> 13 mmag: regressed; the rest unchanged or better), two of
    OTHER (unchanged); the pages written."""
    repo = tmp_path_factory.mktemp("repo")
    days = [f"2026-11-0{d}T12:00:00+00:00" for d in (1, 2, 3)]
    for created, pa1_g, offset in zip(days, (10.0, 9.5, 13.0), (5.0, 4.0, 3.0)):
        append_run(repo, make_doc(created=created, pa1_g=pa1_g, offset=offset, pa1_threshold=15.0))
    for created in days[:2]:
        append_run(repo, make_doc(created=created, collection=OTHER, pa1_threshold=15.0))
    out = repo / "dashboard"
    pages = write_dashboard(repo, out)
    assert sorted(p.name for p in pages) == sorted(["index.html", case_page_name(CASE)])
    return {p.name: p for p in pages}


def _load(driver: Any, page: Path) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get_log("browser")  # drop the entries of earlier pages
    driver.get(page.as_uri())
    WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.body.dataset.chartsRendered"))


def _figures(driver: Any) -> list[dict[str, Any]]:
    """What each chart of the page drew (read from the DOM the renderer built)."""
    return driver.execute_script(
        """
        return Array.from(document.querySelectorAll("figure.chart")).map(f => {
          const svg = f.querySelectorAll("svg");
          const pts = Array.from(f.querySelectorAll("svg circle.point"));
          const line = f.querySelector("svg polyline.series-line");
          const r = svg.length ? svg[0].getBoundingClientRect() : null;
          return {
            key: f.dataset.key,
            collection: f.closest("section").dataset.collection,
            regressed: f.classList.contains("regressed"),
            flag: (f.querySelector(".flag") || {}).textContent || "",
            n_svg: svg.length,
            width: r ? r.width : 0,
            height: r ? r.height : 0,
            cx: pts.map(p => Number(p.getAttribute("cx"))),
            cy: pts.map(p => Number(p.getAttribute("cy"))),
            regressed_points: pts.filter(p => p.classList.contains("regressed")).length,
            line_points: line ? line.getAttribute("points").trim().split(/\\s+/).length : 0,
            axes: f.querySelectorAll("svg line.x-axis, svg line.y-axis").length,
            x_label: (f.querySelector("svg .x-label") || {}).textContent || "",
            y_label: (f.querySelector("svg .y-label") || {}).textContent || "",
            y_ticks: f.querySelectorAll("svg text.y-tick").length,
            x_ticks: Array.from(f.querySelectorAll("svg text.x-tick")).map(t => t.textContent),
            thresholds: f.querySelectorAll("svg line.threshold").length,
          };
        });
        """
    )


def _assert_charts_drawn(figs: list[dict[str, Any]], thresholds: dict[str, int]) -> None:
    for f in figs:
        n = RUNS[f["collection"]]
        assert f["n_svg"] == 1 and f["width"] > 200 and f["height"] > 100, f
        assert len(f["cx"]) == n and f["line_points"] == n, f
        assert f["cx"] == sorted(f["cx"]) and len(set(f["cx"])) == n, f  # one x per run, in order
        assert f["axes"] == 2 and f["x_label"] == "verify run" and f["y_label"] == "mmag", f
        assert f["y_ticks"] >= 2 and f["x_ticks"] == [f"#{i}" for i in RUN_IDS[f["collection"]]], f
        assert f["thresholds"] == thresholds[f["key"]], f


def _console_errors(driver: Any) -> list[dict[str, Any]]:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_index_page(driver: Any, site: dict[str, Path], tmp_path: Path) -> None:
    _load(driver, site["index.html"])
    assert driver.title == "openDRP metrics history"
    figs = _figures(driver)
    # PA1 g and r in each collection
    assert sorted((f["collection"], f["key"]) for f in figs) == sorted(
        (c, k) for c in RUNS for k in ("PA1[g]", "PA1[r]")
    )
    assert int(driver.execute_script("return document.body.dataset.chartsRendered")) == len(figs)
    _assert_charts_drawn(figs, {"PA1[g]": 1, "PA1[r]": 1})
    # the regression: PA1 g of the main collection only, flagged with its previous and current values
    flagged = [(f["collection"], f["key"]) for f in figs if f["regressed"]]
    assert flagged == [(MAIN, "PA1[g]")]
    (pa1_g,) = [f for f in figs if f["regressed"]]
    assert pa1_g["flag"] == "regressed: 9.5 mmag → 13 mmag"
    assert pa1_g["regressed_points"] == 1 and sum(f["regressed_points"] for f in figs) == 1
    assert pa1_g["cy"][2] < pa1_g["cy"][0] < pa1_g["cy"][1]  # 13 above 10 above 9.5 (SVG y points down)
    items = driver.execute_script(
        "return Array.from(document.querySelectorAll('li.regression')).map(li => li.dataset.key)"
    )
    assert items == ["PA1[g]"]
    red = driver.execute_script(
        "return getComputedStyle(document.querySelector('figure.chart.regressed')).borderColor"
    )
    assert red == "rgb(197, 48, 48)"
    assert driver.execute_script("return document.querySelectorAll('tr.run').length") == sum(RUNS.values())
    assert _local_only(driver)
    assert _console_errors(driver) == []
    _assert_screenshot_drawn(driver, tmp_path / "index.png")


def test_case_page(driver: Any, site: dict[str, Path]) -> None:
    _load(driver, site[case_page_name(CASE)])
    assert driver.title == f"{CASE} metrics history"
    figs = _figures(driver)
    assert sorted((f["collection"], f["key"]) for f in figs) == sorted(
        (c, k) for c in RUNS for k in (CHECK, FACT)
    )
    # abs<= draws the threshold at +-20 mmag; the == fact has none
    _assert_charts_drawn(figs, {CHECK: 2, FACT: 0})
    assert not any(f["regressed"] for f in figs)
    assert sum(f["regressed_points"] for f in figs) == 0
    assert driver.execute_script("return document.querySelectorAll('p.no-regression').length") == 2
    assert _local_only(driver)
    assert _console_errors(driver) == []


def test_console_error_is_seen(driver: Any, site: dict[str, Path], tmp_path: Path) -> None:
    """The console check can fail: a page whose chart data are broken logs a SEVERE entry."""
    broken = tmp_path / "broken.html"
    broken.write_text(site["index.html"].read_text().replace('"points": [', '"points": null, "x": [', 1))
    _load(driver, broken)
    assert int(driver.execute_script("return document.body.dataset.chartsRendered")) == 3  # one of 4 fails
    assert len(_console_errors(driver)) == 1


def _local_only(driver: Any) -> bool:
    """No resource of the page is fetched from the network (the pages are readable offline)."""
    urls = driver.execute_script(
        "return Array.from(document.querySelectorAll('[src], link[href]'))"
        ".map(e => e.getAttribute('src') || e.getAttribute('href'))"
    )
    return all(not u.startswith(("http:", "https:", "//")) for u in urls)


def _assert_screenshot_drawn(driver: Any, path: Path) -> None:
    """The rendered page is not blank: the screenshot has the page's colours (red flag, blue line, ...)."""
    from PIL import Image

    png = driver.get_screenshot_as_png()
    path.write_bytes(png)
    image = Image.open(io.BytesIO(png)).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 50
    assert any(r > 200 and g < 90 and b < 90 for _, (r, g, b) in colours)  # the regressed point's red
