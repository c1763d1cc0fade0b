"""The latent explorer in a real browser: JupyterLab on 127.0.0.1, Debian's chromium, playwright.

The test starts JupyterLab (a free port, a token, its own runtime and config folders) on a
temporary copy of ``notebooks/12_latent_explorer.ipynb`` pointed at a small random model, opens
the notebook in headless chromium, runs every cell, drags the first latent slider and checks
that the decoded image in the page changed, then times single slider moves to a new image in
the page. Every request the page makes must stay on the loopback address. The server is
stopped, by its PID, whatever happens.

Set ``RGFLOW_BROWSER_SCREENSHOT=figures/fig12_latent_explorer_browser.png`` to keep a
screenshot of the explorer after the slider moved.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest
import torch
from conftest import randomize_

from rgflow.checkpoints import save_checkpoint
from rgflow.model import RGFlow, RGFlowConfig

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "12_latent_explorer.ipynb"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # needed as root
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
]
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
PARAMETERS = {"n_images": 8, "inpaint_steps": 5, "top": 4}

# A 32-bit FNV-1a hash of the pixels an <img> shows, drawn through a canvas.
PIXEL_HASH_JS = """(img) => {
  const canvas = document.createElement("canvas");
  canvas.width = img.naturalWidth;
  canvas.height = img.naturalHeight;
  const context = canvas.getContext("2d");
  context.drawImage(img, 0, 0);
  const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
  let hash = 2166136261;
  for (let k = 0; k < data.length; k++) {
    hash = Math.imul(hash ^ data[k], 16777619) >>> 0;
  }
  return [canvas.width, canvas.height, hash];
}"""

# True once no cell is queued or running and at least one has run.
CELLS_DONE_JS = """() => {
  const prompts = [...document.querySelectorAll(".jp-CodeCell .jp-InputPrompt")]
    .map((p) => p.textContent.trim());
  return prompts.length > 0 && !prompts.some((p) => p.includes("*"))
    && prompts.some((p) => /\\[\\d+\\]/.test(p));
}"""


def missing_requirement() -> str | None:
    """Why the test cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright)"
    if not CHROMIUM.is_file():
        return f"no chromium at {CHROMIUM} (apt-get install chromium)"
    try:
        import ipywidgets  # noqa: F401
        import jupyterlab  # noqa: F401
        import papermill  # noqa: F401
    except ImportError as err:
        return f"{err.name} is not installed (the notebooks extra)"
    if not NOTEBOOK.is_file():
        return f"{NOTEBOOK} is missing"

    return None


@dataclass
class Lab:
    """A running JupyterLab: its base URL, token, folder and process."""

    url: str
    token: str
    root: Path
    process: subprocess.Popen
    log: Path

    def api(self, method: str, path: str, body: dict | None = None) -> dict | None:
        """Call the REST API with the token; return the JSON answer (None if empty)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            text = answer.read()

        return json.loads(text) if text else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_notebook(folder: Path) -> Path:
    """A copy of the explorer notebook, outputs cleared, pointed at a small random model."""
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    torch.manual_seed(0)
    config = RGFlowConfig(n_layers=1, n_resblocks=1, n_mlp=1, n_hidden=16)  # 32 x 32 x 3
    checkpoint = save_checkpoint(folder / "model.pt", randomize_(RGFlow(config), seed=2))

    nb = load_notebook_node(str(NOTEBOOK))
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    parameters = {**PARAMETERS, "checkpoint": str(checkpoint), "out_dir": str(folder / "out")}
    nb = parameterize_notebook(nb, parameters)
    path = folder / NOTEBOOK.name
    nbformat.write(nb, path)

    return path


def wait_until_up(lab: Lab, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lab.process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited: {lab.log.read_text()[-2000:]}")
        try:
            lab.api("GET", "/api/status")
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    raise TimeoutError(f"JupyterLab did not answer in {timeout} s: {lab.log.read_text()[-2000:]}")


def stop(process: subprocess.Popen) -> None:
    """Terminate the server we started (its PID only); kill it if it does not stop."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    reason = missing_requirement()
    if reason:
        pytest.skip(reason)
    root = tmp_path / "lab"
    root.mkdir()
    make_notebook(root)
    dirs = {
        name: tmp_path / name.lower()
        for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR", "IPYTHONDIR")
    }
    for folder in dirs.values():
        folder.mkdir()
    env = {**os.environ, **{k: str(v) for k, v in dirs.items()}, "OMP_NUM_THREADS": "1"}
    port, token = free_port(), os.urandom(16).hex()
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        "--ServerApp.terminals_enabled=False",
        "--LabApp.news_url=None",  # no announcements fetched from the internet
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
    ]  # fmt: skip
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    log = tmp_path / "jupyterlab.log"
    with open(log, "w") as out:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=out, stderr=out)
    lab = Lab(f"http://127.0.0.1:{port}", token, root, process, log)
    try:
        wait_until_up(lab)
        yield lab
    finally:
        stop(process)


def is_loopback(url: str) -> bool:
    """Whether a request stays on this machine (data: URLs and blob: URLs of a local page)."""
    parts = urlsplit(url)
    if parts.scheme == "data":
        return True
    if parts.scheme == "blob":
        parts = urlsplit(parts.path)

    return parts.hostname in LOOPBACK


def test_explorer_slider_redraws_the_image_in_jupyterlab(lab: Lab) -> None:
    from playwright.sync_api import sync_playwright

    notebook = {"path": NOTEBOOK.name, "name": NOTEBOOK.name, "type": "notebook"}
    session = lab.api("POST", "/api/sessions", {**notebook, "kernel": {"name": "python3"}})
    requests: list[str] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            try:
                page = browser.new_page(viewport={"width": 1500, "height": 1000})
                page.on("request", lambda r: requests.append(r.url))
                page.on("websocket", lambda ws: requests.append(ws.url))
                run_and_drag(page, lab)
            finally:
                browser.close()
    finally:
        lab.api("DELETE", f"/api/sessions/{session['id']}")

    assert requests, "the page made no request at all"
    outside = sorted({url for url in requests if not is_loopback(url)})
    assert not outside, f"requests left the loopback address: {outside}"


def step_latency(page: Page, image: Locator, slider: Locator, steps: int = 10) -> list[float]:
    """Milliseconds from one move of the slider's handle to a new image in the page.

    The handle is dragged back and forth between a quarter and three quarters of its track
    in one mouse move each, so each move is one value change (the slider updates continuously).
    """
    times = []
    handle, track = slider.locator(".noUi-handle").first, slider.locator(".noUi-target").first
    for k in range(steps):
        src, box, bar = image.get_attribute("src"), handle.bounding_box(), track.bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(x, y)
        page.mouse.down()
        started = time.perf_counter()
        page.mouse.move(bar["x"] + (0.25 if k % 2 else 0.75) * bar["width"], y)
        page.wait_for_function(
            "([img, old]) => img.src !== old", arg=[image.element_handle(), src], timeout=20_000
        )
        times.append(1000 * (time.perf_counter() - started))
        page.mouse.up()
        page.wait_for_timeout(200)  # the release sends no new value; let it settle

    return times


def open_and_run_all(page: Page, lab: Lab) -> float:
    """Open the notebook, run every cell from the menu, wait until none is queued or running.

    Returns:
        The seconds the cells took.
    """
    page.goto(f"{lab.url}/lab/tree/{NOTEBOOK.name}?token={lab.token}")
    page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(timeout=60_000)
    page.locator(".jp-Notebook").first.click()
    started = time.perf_counter()

    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-item").filter(has=page.get_by_text("Run All Cells", exact=True)).click()
    page.locator("img.rgflow-explorer-image").wait_for(timeout=90_000)
    page.wait_for_function(CELLS_DONE_JS, timeout=90_000)
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    tracebacks = [t for t in errors.all_inner_texts() if "Error" in t]
    assert not tracebacks, f"a cell failed: {tracebacks[0][-1500:]}"

    return time.perf_counter() - started


def drag_and_compare(page: Page, image: Locator, slider: Locator) -> None:
    """Drag a slider's handle across its track; the pixels the page shows must change."""
    image.scroll_into_view_if_needed()
    before_src, before_pixels = image.get_attribute("src"), image.evaluate(PIXEL_HASH_JS)
    handle, track = slider.locator(".noUi-handle").first, slider.locator(".noUi-target").first
    box, bar = handle.bounding_box(), track.bounding_box()
    start_x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    end_x = bar["x"] + (0.1 if start_x > bar["x"] + bar["width"] / 2 else 0.9) * bar["width"]
    page.mouse.move(start_x, y)
    page.mouse.down()
    page.mouse.move(end_x, y, steps=5)
    page.mouse.up()

    # the kernel decodes, the widget sends new PNG bytes, the page shows them
    page.wait_for_function(
        "([img, old]) => img.src && img.src !== old",
        arg=[image.element_handle(), before_src],
        timeout=30_000,
    )
    page.wait_for_timeout(1500)  # let the last update of the drag arrive
    after_pixels = image.evaluate(PIXEL_HASH_JS)
    assert after_pixels[:2] == before_pixels[:2]
    assert after_pixels != before_pixels, "the decoded image did not change"


def run_and_drag(page: Page, lab: Lab) -> None:
    """Run the notebook, drag the strongest latent's slider, time single moves, screenshot."""
    seconds = open_and_run_all(page, lab)
    image = page.locator("img.rgflow-explorer-image")
    slider = page.locator(".rgflow-latent-slider").first
    drag_and_compare(page, image, slider)
    moves = step_latency(page, image, slider)
    explorer = page.locator(".rgflow-explorer").first
    status = explorer.inner_text().strip().splitlines()[-1]
    print(
        f"\nall cells ran in {seconds:.0f} s; one slider move to a new image in the page, "
        f"median of {len(moves)}: {statistics.median(moves):.0f} ms; panel: {status}"
    )

    shot = lab.root / "explorer.png"
    explorer.screenshot(path=str(shot))
    target = os.environ.get("RGFLOW_BROWSER_SCREENSHOT")
    if target:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target)
