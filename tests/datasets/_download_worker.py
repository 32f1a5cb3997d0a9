"""The body of a second process that calls `get_file` (run under multiprocessing's spawn).

The child loads `_download.py` from its file instead of importing `lamina`: the module needs
only the standard library and tqdm, and skipping torch's import keeps the child's start-up
well under the server's delay, so both processes really download at the same time.
"""

from __future__ import annotations

import hashlib
import importlib.util
from typing import Any


def fetch(module_path: str, url: str, cache_dir: str, file_hash: str | None, barrier: Any, results: Any) -> None:
    spec = importlib.util.spec_from_file_location("lamina_download_in_child", module_path)
    download = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(download)
    barrier.wait(timeout=60)
    try:
        path = download.get_file("shared.bin", url, file_hash=file_hash, cache_dir=cache_dir)
        with open(path, "rb") as file:
            results.put(("ok", hashlib.sha256(file.read()).hexdigest()))
    except Exception as error:  # reported to the parent, which fails the test with it
        results.put(("error", repr(error)))
