"""The notebooks in JupyterLab, in a real (headless) browser: `make test-browser`.

Starts a private JupyterLab server on the checkout and, for every notebooks/0*.ipynb:

* opens it and checks that every stored figure renders (one <img> with naturalWidth > 0 per
  stored image/png or other raster image output) and that no dialog comes up;
* runs cells from the UI (keyboard and menus, as a user would): the whole notebook when it has no
  cell tagged nbval-ignore-output (nothing is trained), else its code cells before the first such
  cell (parameters and set-up; training starts at the tagged cell), one by one;
* fails on an error or a traceback in any output, on a browser console error or page error, on a
  cell that is not run in order, and on any file the check changed in the checkout other than
  under runs/ and figures/ (the notebooks themselves are never saved).

Trust: notebook signatures live in the user's Jupyter data folder, never in the file, so in a
fresh data folder (as here and in a fresh clone) a notebook with stored outputs always opens as
"not trusted". What matters is that its stored outputs render anyway: JupyterLab renders the
"safe" output types of untrusted cells (images, text, sanitized HTML) but not JavaScript or SVG,
so the check fails on any stored output of a type that needs trust, reports the trust indicator
as the notebook opens, and requires it to say "trusted" after a whole notebook re-ran (outputs
made in this session are trusted).

Usage: python tests/browser/jupyterlab_check.py [NOTEBOOK ...]   (default: notebooks/0*.ipynb)
Screenshots go to $OTNSD_SCREENSHOTS if set, else to a new temporary folder (its path is printed).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parents[2]
TRAINING_TAG = "nbval-ignore-output"
# Paths the notebooks may write in the checkout (they get scratch folders here, so normally none).
ALLOWED_PREFIXES = ("runs/", "figures/")
# Output types that JupyterLab's renderers show only for trusted cells: a stored output of these
# types shows as its text/plain fallback (or nothing) when the notebook opens untrusted.
NEEDS_TRUST = {"application/javascript", "text/javascript", "image/svg+xml"}
# Stored figures, each rendered as one <img>.
IMAGE_MIME = {"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp"}
# An error output, or a traceback printed to stderr (IPython's errors all carry one, except
# SyntaxError-like ones, caught by the second pattern).
ERROR_TEXT = re.compile(r"Traceback|^\w*(Error|Exception|Interrupt)\b(:|$)", re.M)
# Known console noise (none so far). Each entry needs a comment saying why it is harmless.
BENIGN_CONSOLE: list[re.Pattern] = []

START_TIMEOUT_S = 90   # the server answers
OPEN_TIMEOUT_S = 120   # notebook rendered and its kernel idle (kernel start imports nothing heavy)
CELL_TIMEOUT_S = 180   # one set-up cell (builds the simulated dataset)
RUN_ALL_TIMEOUT_S = 240


def log(msg: str) -> None:
    print(msg, flush=True)


class CheckFailed(Exception):
    pass


# ---------------------------------------------------------------- what to expect, from the JSON

def notebook_plan(path: Path) -> dict:
    nb = json.loads(path.read_bytes())
    cells = nb["cells"]
    outputs = [(i, out) for i, c in enumerate(cells) for out in c.get("outputs", [])]
    images = sum(bool(IMAGE_MIME & out.get("data", {}).keys()) for _, out in outputs)
    unsafe = sorted({f"cell {i}: {mime}" for i, out in outputs for mime in NEEDS_TRUST & out.get("data", {}).keys()})
    tagged = [i for i, c in enumerate(cells)
              if c["cell_type"] == "code" and TRAINING_TAG in c.get("metadata", {}).get("tags", [])]
    stop = tagged[0] if tagged else len(cells)
    return {
        "n_cells": len(cells),
        "images": images,
        "unsafe": unsafe,
        "run_all": not tagged,
        "run": [i for i in range(stop) if cells[i]["cell_type"] == "code"],
        "code_cells": [i for i, c in enumerate(cells) if c["cell_type"] == "code"],
    }


# ---------------------------------------------------------------- the checkout before and after

def _git(*args: str) -> list[str]:
    out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, check=True).stdout
    return [p for p in out.decode().split("\0") if p]


def _digest(rel: str) -> str:
    p = REPO / rel
    if p.is_dir():
        return "dir"
    try:
        return hashlib.sha1(p.read_bytes()).hexdigest()
    except FileNotFoundError:
        return "missing"


def repo_state() -> dict[str, str]:
    """Content of every file git knows of or would list (tracked, untracked), every ignored entry
    (ignored folders such as .venv/ as one entry each) and everything under notebooks/, ignored
    files included (.ipynb_checkpoints/, caches)."""
    paths = set(_git("ls-files", "-z", "--cached", "--others", "--exclude-standard"))
    paths |= set(_git("ls-files", "-z", "--others", "--ignored", "--exclude-standard", "--directory"))
    paths |= {p.relative_to(REPO).as_posix() for p in (REPO / "notebooks").rglob("*") if p.is_file()}
    return {p: _digest(p) for p in paths}


def changed_paths(before: dict[str, str], after: dict[str, str]) -> list[str]:
    changed = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))

    def allowed(p: str) -> bool:
        # Byte-code caches are written by any import of the package, in a fresh clone too.
        pycache = "__pycache__/" in p + "/" and not p.startswith("notebooks/")
        return p.startswith(ALLOWED_PREFIXES) or pycache

    return [p for p in changed if not allowed(p)]


# ---------------------------------------------------------------- the server

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_lab_settings(settings_dir: Path) -> None:
    settings = {
        # Running cells makes a notebook dirty: autosave would write it back after 120 s.
        "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
        # No calls to the internet (news, update check) and no notification about them.
        "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    }
    for plugin, values in settings.items():
        f = settings_dir / f"{plugin}.jupyterlab-settings"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(values))


@contextmanager
def jupyterlab(scratch: Path):
    """A JupyterLab server on 127.0.0.1 serving the checkout, with its own config, data, runtime and
    settings folders (the user's are neither read nor written); stopped on exit, kernels included."""
    port, token = free_port(), secrets.token_hex(24)
    dirs = {name: scratch / name for name in ("config", "data", "runtime", "ipython", "checkpoints", "lsp", "runs", "figures")}
    for d in dirs.values():
        d.mkdir()
    settings = dirs["config"] / "lab" / "user-settings"
    write_lab_settings(settings)
    env = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(dirs["config"]),
        JUPYTER_DATA_DIR=str(dirs["data"]),
        JUPYTER_RUNTIME_DIR=str(dirs["runtime"]),
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTERLAB_WORKSPACES_DIR=str(dirs["data"] / "workspaces"),
        IPYTHONDIR=str(dirs["ipython"]),
        OTNSD_RUNS=str(dirs["runs"]),
        OTNSD_FIGURES=str(dirs["figures"]),
        HF_HUB_OFFLINE="1",
    )
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
        "--port-retries=0", f"--ServerApp.root_dir={REPO}", f"--IdentityProvider.token={token}",
        # JupyterLab makes a checkpoint of every notebook it opens that has none (not only on save):
        # they would go to notebooks/.ipynb_checkpoints/.
        f"--FileCheckpoints.checkpoint_dir={dirs['checkpoints']}",
        # jupyter-lsp would keep its virtual documents in <root>/.virtual_documents.
        f"--LanguageServerManager.virtual_documents_dir={dirs['lsp']}",
        "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
    ] + (["--allow-root"] if os.geteuid() == 0 else [])  # CI runs as root
    server_log = open(scratch / "server.log", "wb")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=server_log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise CheckFailed(f"JupyterLab exited with {proc.returncode}:\n{_tail(scratch / 'server.log')}")
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise CheckFailed(f"JupyterLab did not answer within {START_TIMEOUT_S} s:\n{_tail(scratch / 'server.log')}")
            time.sleep(0.5)
        yield {"base": base, "token": token, "log": scratch / "server.log"}
    finally:
        stop_server(proc, dirs["runtime"])
        server_log.close()


def _tail(path: Path, n: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:])


def api(lab: dict, method: str, path: str):
    req = urllib.request.Request(f"{lab['base']}{path}", method=method,
                                 headers={"Authorization": f"token {lab['token']}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        body = r.read()
    return json.loads(body) if body else None


def stop_server(proc: subprocess.Popen, runtime: Path) -> None:
    # SIGTERM lets the server shut its kernels down; they run in sessions of their own, so any
    # left (server killed) are found by their connection files in our runtime folder.
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    for pid_dir in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (pid_dir / "cmdline").read_bytes()
        except OSError:
            continue
        if str(runtime).encode() in cmdline and int(pid_dir.name) != os.getpid():
            try:
                os.kill(int(pid_dir.name), signal.SIGKILL)
            except ProcessLookupError:
                pass


# ---------------------------------------------------------------- the browser

def find_chromium() -> str:
    # Playwright's own browser download needs the internet: use the system's chromium.
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    raise CheckFailed("no chromium found (apt-get install chromium; `make test-browser` installs it)")


PANEL = ".jp-NotebookPanel"
INDICATOR = f"{PANEL} .jp-Notebook-ExecutionIndicator"

# JS: count changes to a prompt's text. A cell whose prompt changed and no longer shows "[*]" is
# done (a number) or was cancelled ("[ ]"), even when that happened before we looked.
WATCH = """els => els.forEach(el => {
    el.__changes = 0;
    new MutationObserver(() => el.__changes++)
        .observe(el, {childList: true, subtree: true, characterData: true});
})"""
# Settled: the kernel idle, a cell was queued and none is queued or running any more (after an
# error, the cells still queued are cleared, not run).
SETTLED = """([els, indicator]) => indicator && indicator.dataset.status === 'idle'
    && els.some(el => el.__changes > 0) && !els.some(el => el.textContent.includes('*'))"""
# The indicator says "idle" before the notebook has a kernel, too: wait for the kernel's name.
KERNEL_READY = """([panel, indicator]) => {
    const name = document.querySelector(panel + ' .jp-KernelName');
    const status = document.querySelector(indicator);
    return name && status && !['', 'No Kernel'].includes(name.textContent.trim())
        && status.dataset.status === 'idle';
}"""


def kernel_idle(page, lab: dict, timeout_s: float) -> None:
    """The notebook's kernel is started, connected to the page and idle (seen by page and server)."""
    deadline = time.monotonic() + timeout_s
    page.wait_for_function(KERNEL_READY, arg=[PANEL, INDICATOR], timeout=timeout_s * 1000, polling=200)
    while True:
        kernels = [s["kernel"] for s in api(lab, "GET", "/api/sessions") if s.get("kernel")]
        if kernels and all(k["execution_state"] == "idle" and k["connections"] > 0 for k in kernels):
            return
        if time.monotonic() > deadline:
            raise CheckFailed(f"kernel not ready after {timeout_s} s: {kernels}")
        time.sleep(0.2)


def prompts(page, indices: list[int]):
    cells = page.locator(f"{PANEL} .jp-Notebook .jp-Cell")
    return [cells.nth(i).locator(".jp-InputArea-prompt").element_handle() for i in indices]


def wait_ran(page, handles, timeout_s: float) -> list[int | None]:
    """Execution counts of the cells once settled (None: not run)."""
    indicator = page.locator(INDICATOR).element_handle()
    page.wait_for_function(SETTLED, arg=[handles, indicator], timeout=timeout_s * 1000, polling=200)
    counts = [re.search(r"\[(\d+)\]", h.text_content()) for h in handles]
    changed = page.evaluate("els => els.map(el => el.__changes > 0)", handles)
    return [int(c.group(1)) if c and ran else None for c, ran in zip(counts, changed)]


def check_images(page, expected: int, exact: bool, where: str) -> int:
    """Number of figures in the page, all rendered; at least (or, exact, just) the ``expected``."""
    sel = f"{PANEL} .jp-OutputArea-output img"
    try:
        page.wait_for_function(
            """([sel, n]) => { const imgs = [...document.querySelectorAll(sel)];
                return imgs.length >= n && imgs.every(i => i.complete && i.naturalWidth > 0); }""",
            arg=[sel, expected], timeout=30_000)
    except Exception:
        pass  # reported below, with what is there
    imgs = page.eval_on_selector_all(sel, "imgs => imgs.map(i => [i.complete, i.naturalWidth])")
    broken = sum(1 for complete, width in imgs if not (complete and width > 0))
    if broken or len(imgs) < expected or (exact and len(imgs) != expected):
        raise CheckFailed(f"{where}: {len(imgs)} figures in the page ({broken} not rendered), "
                          f"{expected} stored in the file")
    return len(imgs)


def output_errors(page) -> list[str]:
    texts = page.eval_on_selector_all(
        f"{PANEL} .jp-OutputArea-output",
        """outs => outs.map((o, i) => {
            const cell = o.closest('.jp-Cell');
            const index = [...cell.parentElement.children].filter(c => c.classList.contains('jp-Cell')).indexOf(cell);
            const stderr = o.matches('[data-mime-type="application/vnd.jupyter.stderr"]')
                || o.querySelector('[data-mime-type="application/vnd.jupyter.stderr"]');
            // textContent, not innerText: cells scrolled out of view are not laid out (windowing)
            // and their innerText is empty.
            return [index, stderr ? o.textContent : ''];
        })""")
    # The end of a traceback says what went wrong.
    return [f"cell {i}: ...{t.strip()[-800:]}" for i, t in texts if t and ERROR_TEXT.search(t)]


def no_dialog(page, when: str) -> None:
    dialogs = page.locator(".jp-Dialog")
    if dialogs.count():
        raise CheckFailed(f"a dialog came up {when}: {dialogs.first.text_content()[:300]}")


def trust_status(page) -> str:
    """The notebook's trust indicator in the status bar, e.g. "not trusted (0 of 8 code cells)"."""
    item = page.locator(".jp-StatusItem-trust")
    titled = item.locator("xpath=descendant-or-self::*[@title]")
    title = titled.first.get_attribute("title") if titled.count() else ""
    m = re.match(r"(.*?):\s*(\d+ of \d+ code cells)", title or "")
    return f"{m.group(1).replace('Notebook ', '').replace('Active cell ', 'cell ')} ({m.group(2)})" if m else "?"


def check_notebook(browser, lab: dict, path: Path, shots: Path, row: dict) -> None:
    """Checks one notebook, filling ``row`` for the summary as it goes; raises on a failure."""
    rel = path.relative_to(REPO).as_posix()
    plan = notebook_plan(path)
    if plan["unsafe"]:
        raise CheckFailed(f"stored outputs that need trust to render (blank in a fresh checkout): "
                          f"{', '.join(plan['unsafe'])}")
    original = path.read_bytes()
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda m: m.type == "error" and console.append(f"console: {m.text}"))
    page.on("pageerror", lambda e: console.append(f"page error: {e}"))
    try:
        # ?reset: start from an empty layout, so notebooks opened before (and their kernels) stay closed.
        page.goto(f"{lab['base']}/lab/tree/{rel}?reset&token={lab['token']}")
        cells = f"{PANEL} .jp-Notebook .jp-Cell"
        try:  # cells are added to the page in batches
            page.wait_for_function("([sel, n]) => document.querySelectorAll(sel).length >= n",
                                   arg=[cells, plan["n_cells"]], timeout=OPEN_TIMEOUT_S * 1000)
        except Exception:
            pass  # reported below
        kernel_idle(page, lab, OPEN_TIMEOUT_S)
        n_dom = page.locator(cells).count()
        if n_dom != plan["n_cells"]:
            raise CheckFailed(f"{n_dom} cells in the page, {plan['n_cells']} in the file")
        no_dialog(page, "on opening")
        row["trust"] = trust_status(page)
        row["figures"] = f"{check_images(page, plan['images'], exact=True, where='as stored')}/{plan['images']}"

        if plan["run_all"]:
            handles = prompts(page, plan["code_cells"])
            page.evaluate(WATCH, handles)
            page.locator(".lm-MenuBar-item", has_text="Run").first.click()
            page.locator(".lm-Menu-item .lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
            counts = wait_ran(page, handles, RUN_ALL_TIMEOUT_S)
        else:
            counts = []
            for i in plan["run"]:
                [handle] = prompts(page, [i])
                page.evaluate(WATCH, [handle])
                handle.click()  # selects the cell
                page.keyboard.press("Escape")  # command mode, whatever the click did
                page.keyboard.press("Shift+Enter")
                counts += wait_ran(page, [handle], CELL_TIMEOUT_S)
                if counts[-1] is None or output_errors(page):
                    break  # reported below
        row["cells"] = sum(c is not None for c in counts)
        no_dialog(page, "while running")  # e.g. "kernel restarting"
        kernel_idle(page, lab, CELL_TIMEOUT_S)
        errors = output_errors(page)
        if errors:
            raise CheckFailed("error outputs:\n" + "\n".join(errors))
        expected = list(range(1, len(plan["code_cells" if plan["run_all"] else "run"]) + 1))
        if counts != expected:
            raise CheckFailed(f"execution counts {counts}, expected {expected} (None: not run)")
        check_images(page, plan["images"], exact=plan["run_all"], where="after the run")
        if plan["run_all"] and not trust_status(page).startswith("trusted"):
            raise CheckFailed(f"not trusted after every cell ran: {trust_status(page)}")
        page.screenshot(path=str(shots / f"{path.stem}.png"))
        noise = [m for m in console if not any(p.search(m) for p in BENIGN_CONSOLE)]
        if noise:
            raise CheckFailed("browser console errors:\n" + "\n".join(noise))
    except Exception as e:
        try:
            page.screenshot(path=str(shots / f"{path.stem}-failed.png"))
        except Exception:
            pass
        if path.read_bytes() != original:
            raise CheckFailed(f"the file changed on disk; before that: {e}") from e
        raise
    finally:
        # Closed without saving: the page goes, then its kernel (the server keeps sessions alive).
        context.close()
        for session in api(lab, "GET", "/api/sessions"):
            api(lab, "DELETE", f"/api/sessions/{session['id']}")
    if path.read_bytes() != original:
        raise CheckFailed("the file changed on disk")


def main(argv: list[str]) -> int:
    notebooks = [Path(a).resolve() for a in argv] or sorted((REPO / "notebooks").glob("0*.ipynb"))
    if not notebooks:
        raise CheckFailed("no notebooks found")
    chromium = find_chromium()
    shots = Path(os.environ.get("OTNSD_SCREENSHOTS") or tempfile.mkdtemp(prefix="otnsd-screenshots-"))
    shots.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    before = repo_state()
    rows, failures = [], []
    with tempfile.TemporaryDirectory(prefix="otnsd-jupyterlab-") as scratch:
        try:
            with jupyterlab(Path(scratch)) as lab, sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=chromium, headless=True)
                try:
                    for nb in notebooks:
                        log(f"== {nb.relative_to(REPO)}")
                        row = {"notebook": nb.name, "figures": "-", "cells": 0, "trust": "?", "result": "ok"}
                        rows.append(row)
                        t = time.monotonic()
                        try:
                            check_notebook(browser, lab, nb, shots, row)
                        except Exception as e:  # the next notebooks are still checked
                            row["result"] = "FAILED"
                            msg = str(e) if isinstance(e, CheckFailed) else f"{type(e).__name__}: {e}"
                            failures.append(f"{nb.relative_to(REPO)}: {msg.strip()[:3000]}")
                            log(f"   FAILED: {msg.strip()[:3000]}")
                        row["seconds"] = time.monotonic() - t
                finally:
                    browser.close()
        except Exception:
            log(f"server log (last lines):\n{_tail(Path(scratch) / 'server.log')}")
            raise
        finally:
            log(f"screenshots: {shots}")
    changed = changed_paths(before, repo_state())
    if changed:
        failures.append("files changed in the checkout (only runs/ and figures/ may change):\n  "
                        + "\n  ".join(changed))

    log(f"\n{'notebook':30s} {'figures':>7s} {'cells run':>9s} {'seconds':>7s}  {'result':6s}  trust on opening")
    for r in rows:
        log(f"{r['notebook']:30s} {r['figures']:>7s} {r['cells']:9d} {r['seconds']:7.1f}  {r['result']:6s}  {r['trust']}")
    log(f"{'total':30s} {'':7s} {'':9s} {time.monotonic() - t0:7.1f}")
    if failures:
        print("\nFAILED:\n" + "\n".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except CheckFailed as e:
        print(f"FAILED: {e}", file=sys.stderr)
        sys.exit(1)
