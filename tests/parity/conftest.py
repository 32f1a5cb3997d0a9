"""Keras's own deprecation warnings (NumPy 2's `__array__` protocol in its Variable) are not
Lamina's to fix; everything else stays an error."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/parity/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.filterwarnings("ignore::DeprecationWarning:keras"))
