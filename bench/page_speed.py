"""Page speed in a real browser: the first open, the Dataset page's rerun and its 2-D maps (issue 15, item 5).

Data, not a test. Each measurement starts ``streamlit run streamlit_app.py`` on a free loopback port with its own
temporary data folder (``AUDIOWB_DATA_DIR``) and runs folder (``AUDIOWB_RUNS_DIR``, holding a copy of the shipped
``models/default``), and drives Debian's headless Chromium with Playwright:

(a) cold start, a fresh data folder and a fresh server: from navigation to the home page's title visible, and to
    the built-in set ready (its "Clips" metric shown; the set is synthesized in the background meanwhile);
(b) the Dataset page on the built-in set (3,000 clips): from clicking **Generate / open** with the settings
    unchanged (a full rerun of the page) to the page settled;
(c) the 2-D map, first view (a fresh server each round, nothing cached but the set on disk): from choosing the
    map to its chart drawn, for the model's learned map and the input features, PCA and t-SNE. The learned PCA
    map is the page's default, so it is drawn by the page's first open, also reported.

"Settled" is measured in the page: the time of the last change to the page (a MutationObserver), once Streamlit's
running indicator is gone and nothing has changed for a second. With ``--baseline REF`` the same rounds run,
interleaved, on the tree of git commit REF (extracted to a temporary folder): before and after under the same load.
The median of the rounds replaces the ``page-speed`` section of ``--out`` (default ``docs/benchmarks.md``), with
the load average seen during the runs.

Usage::

    python bench/page_speed.py [--baseline REF] [--cold-rounds 2] [--rerun-rounds 5] [--map-rounds 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack, contextmanager, suppress
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.report import command_line, write_section  # noqa: E402
from tests.e2e.conftest import CHROMIUM, _free_port  # noqa: E402

SECTION = "page-speed"
TITLE = "Audio classification workbench"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
MAPS = [("features", "tsne"), ("features", "pca"), ("learned", "tsne")]  # in this order after the first open
MAP_LABELS = {"learned": "What the model learned", "features": "Input features"}
PROJECTION_LABELS = {"pca": "PCA", "tsne": "t-SNE"}
LOADS: list[float] = []

# Records the time of the last change to the page (performance.now(), ms).
OBSERVER = """() => { window.__lastChange = performance.now();
    new MutationObserver(() => { window.__lastChange = performance.now(); })
        .observe(document.body, {subtree: true, childList: true, attributes: true, characterData: true}); }"""


@contextmanager
def server(tree: Path, data_dir: Path, runs_dir: Path):
    """``streamlit run`` of the app in ``tree`` on a free port; yields its URL once healthy, stops it after."""
    port = _free_port()
    env = {**os.environ, "AUDIOWB_DATA_DIR": str(data_dir), "AUDIOWB_RUNS_DIR": str(runs_dir)}
    log = open(data_dir.parent / f"streamlit-{port}.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none"], cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"streamlit did not start in {tree}; see {log.name}")
                time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        with suppress(subprocess.TimeoutExpired):
            process.wait(10)
        process.kill()  # nothing once it has exited
        log.close()


def settle(page, since_ms: float, timeout_s: float = 300, quiet_s: float = 1.0) -> float:
    """Seconds from ``since_ms`` (page clock) to the page's last change, once Streamlit has stopped running and
    nothing changed for ``quiet_s``."""
    deadline = time.monotonic() + timeout_s
    time.sleep(0.2)
    while time.monotonic() < deadline:
        running = page.locator('[data-testid="stStatusWidget"]').count() > 0
        now, last = page.evaluate("() => [performance.now(), window.__lastChange]")
        if not running and now - last > quiet_s * 1000:
            return (last - since_ms) / 1000
        time.sleep(0.05)
    LOADS.append(os.getloadavg()[0])
    raise RuntimeError("the page did not settle in time")


def new_page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(300_000)
    return context, page


def open_and_settle(page, url: str) -> float:
    """Open ``url``; seconds from navigation to the page settled."""
    started = time.perf_counter()
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_selector("h1")
    page.evaluate(OBSERVER)
    since = page.evaluate("() => performance.now()") - (time.perf_counter() - started) * 1000
    return settle(page, since)


def cold_start(browser, tree: Path, work: Path) -> dict:
    """(a): a fresh data folder and server; seconds to the home title and to the built-in set ready."""
    data_dir, runs_dir = folders(work)
    with server(tree, data_dir, runs_dir) as url:
        context, page = new_page(browser)
        started = time.perf_counter()
        page.goto(url, wait_until="commit")
        page.get_by_role("heading", name=TITLE).wait_for(state="visible")
        title = time.perf_counter() - started
        page.locator('[data-testid="stMetric"]', has_text="Clips").wait_for(state="visible", timeout=600_000)
        ready = time.perf_counter() - started
        LOADS.append(os.getloadavg()[0])
        context.close()
    return {"title": title, "ready": ready, "data_dir": data_dir}


def folders(work: Path, data_dir: Path | None = None) -> tuple[Path, Path]:
    """A new folder under ``work`` with a runs folder holding the shipped default model (and a data folder,
    unless ``data_dir`` is given)."""
    base = Path(tempfile.mkdtemp(dir=work))
    runs_dir = base / "runs"
    shutil.copytree(ROOT / "models" / "default", runs_dir / "default")
    if data_dir is None:
        data_dir = base / "data"
        data_dir.mkdir()
    return data_dir, runs_dir


def dataset_reruns(browser, trees: dict[str, Path], work: Path, data_dir: Path, rounds: int) -> dict[str, list]:
    """(b): seconds from clicking Generate / open (settings unchanged) to the Dataset page settled, per tree (one
    server each, running side by side, their rounds interleaved)."""
    times: dict[str, list] = {name: [] for name in trees}
    with ExitStack() as stack:
        pages = {}
        for name, tree in trees.items():
            url = stack.enter_context(server(tree, data_dir, folders(work, data_dir)[1]))
            context, pages[name] = new_page(browser)
            stack.callback(context.close)
            open_and_settle(pages[name], f"{url}/dataset")
        for _ in range(rounds):
            for name, page in pages.items():
                since = page.evaluate("() => performance.now()")
                page.get_by_role("button", name="Generate / open").click()
                times[name].append(settle(page, since))
                LOADS.append(os.getloadavg()[0])
    return times


def choose_map(page, what: str, method: str) -> float:
    """Seconds from choosing map ``what`` by ``method`` to its chart drawn and the page settled."""
    label = f"{'Input features' if what == 'features' else 'learned'}"
    since = page.evaluate("() => performance.now()")
    for group, option in (("Map of", MAP_LABELS[what]), ("Projection", PROJECTION_LABELS[method])):
        radio = page.get_by_role("radiogroup", name=group).get_by_text(option, exact=False).first
        if not page.get_by_role("radiogroup", name=group).get_by_role("radio", name=option).first.is_checked():
            radio.click()
    page.locator(".gtitle", has_text=f", {PROJECTION_LABELS[method]} (click").filter(has_text=label)\
        .wait_for(state="visible")
    return settle(page, since)


def map_views(browser, tree: Path, work: Path, data_dir: Path) -> dict:
    """(c): a fresh server; the Dataset page's first open (draws the learned PCA map), then each of MAPS."""
    _, runs_dir = folders(work, data_dir)
    with server(tree, data_dir, runs_dir) as url:
        context, page = new_page(browser)
        result = {("learned", "pca"): open_and_settle(page, f"{url}/dataset")}
        for what, method in MAPS:
            result[(what, method)] = choose_map(page, what, method)
            LOADS.append(os.getloadavg()[0])
        context.close()
    return result


@contextmanager
def baseline_tree(ref: str | None):
    """The tree of commit ``ref`` extracted into a temporary folder (None: no baseline)."""
    if ref is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="page-speed-base-") as folder:
        archive = subprocess.run(["git", "archive", ref], cwd=ROOT, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
        yield Path(folder)


def median(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}" if values else "n/a"


def table(results: dict, trees: list[str]) -> str:
    """Markdown table: one row per measurement, one column per tree (median s, and the range)."""
    rows = [("Cold start: home title visible", "title"), ("Cold start: built-in set ready", "ready"),
            ("Dataset page rerun (Generate / open, unchanged)", "rerun"),
            ("Dataset page first open (draws the learned PCA map)", ("learned", "pca"))]
    rows += [(f"Map, first view: {MAP_LABELS[w].lower()}, {PROJECTION_LABELS[m]}", (w, m)) for w, m in MAPS]
    lines = ["| Measurement (s, median [min–max]) | " + " | ".join(trees) + " |",
             "|---|" + "---:|" * len(trees)]
    for label, key in rows:
        cells = []
        for tree in trees:
            values = results[tree].get(key, [])
            cells.append(f"{median(values)} [{min(values):.2f}–{max(values):.2f}]" if values else "n/a")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def measure(args, trees: dict[str, Path], work: Path) -> dict:
    """Every round of (a), (b) and (c), interleaved between the trees."""
    from playwright.sync_api import sync_playwright

    results = {name: {} for name in trees}
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        data_dir = args.data_dir
        for _ in range(args.cold_rounds if data_dir is None else 0):
            for name, tree in trees.items():
                cold = cold_start(browser, tree, work)
                data_dir = cold.pop("data_dir")
                for key, value in cold.items():
                    results[name].setdefault(key, []).append(value)
                print(name, "cold", cold, flush=True)
        for name, times in dataset_reruns(browser, trees, work, data_dir, args.rerun_rounds).items():
            results[name]["rerun"] = times
            print(name, "rerun", times, flush=True)
        for _ in range(args.map_rounds):
            for name, tree in trees.items():
                for key, value in map_views(browser, tree, work, data_dir).items():
                    results[name].setdefault(key, []).append(value)
                print(name, "maps", {k: results[name][k][-1] for k in [("learned", "pca"), *MAPS]}, flush=True)
        browser.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", help="git commit to measure too, interleaved (before/after)")
    parser.add_argument("--cold-rounds", type=int, default=2)
    parser.add_argument("--rerun-rounds", type=int, default=5)
    parser.add_argument("--map-rounds", type=int, default=2)
    parser.add_argument("--data-dir", type=Path,
                        help="a data folder holding the built-in set: no cold starts, (b) and (c) only")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="page-speed-") as work, baseline_tree(args.baseline) as base:
        trees = ({f"before ({args.baseline})": base} if base is not None else {}) | {f"this tree ({head})": ROOT}
        results = measure(args, trees, Path(work))
    loads = f"{min(LOADS):.2f}–{max(LOADS):.2f}" if LOADS else "n/a"
    body = "\n\n".join([
        "## Page speed in the browser (first open, Dataset rerun, 2-D maps)",
        f"`{command_line('page_speed.py')}` on {datetime.now(timezone.utc):%Y-%m-%d}, {os.cpu_count()} cores, "
        f"1-minute load average {loads} during the runs (other work shared the machine); Debian's headless "
        f"Chromium; the built-in set of {3000:,} clips (the map and grids use a subset of 2,000); each tree's rounds "
        "interleaved with the other's.",
        table(results, list(trees)),
        "Targets (issue 15): first page usable within 5 s on a cold start; the Dataset page reruns in under 1 s; "
        "2-D maps within 3 s for 3,000 clips."])
    write_section(args.out, SECTION, body)
    print(body)


if __name__ == "__main__":
    main()
