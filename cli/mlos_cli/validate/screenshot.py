"""A PNG of the dashboard as headless Chromium renders it, so a person (or a test) can look at the
page without a browser. Chromium comes from the system (Debian's `chromium` package)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# The closed network here refuses Chromium's background connections; these flags keep it quiet.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars")
TIMEOUT_S = 60.0


def find_browser() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def screenshot(html_path: Path, png_path: Path, width: int = 1200, height: int = 3200,
               browser: str | None = None) -> Path:
    """Renders `html_path` at `width`x`height` CSS pixels into `png_path`. Raises RuntimeError
    naming the cause when no browser is found or it fails."""
    browser = browser or find_browser()
    if browser is None:
        raise RuntimeError("no Chromium found for the screenshot: install Debian's `chromium` package")
    with tempfile.TemporaryDirectory(prefix="mlos-chromium-") as profile:
        command = [browser, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
                   f"--screenshot={png_path.resolve()}", html_path.resolve().as_uri()]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{browser} did not finish the screenshot within {TIMEOUT_S:.0f} s") from None
    if done.returncode != 0 or not png_path.is_file():
        raise RuntimeError(f"{browser} failed ({done.returncode}): {done.stderr.strip()[-400:]}")
    return png_path
