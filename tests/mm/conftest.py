"""MMDetection / MMSegmentation tests: marked ``mm``, skipped (with the reason) only when the toolkits are absent."""

from pathlib import Path

import pytest

from mm_helpers import missing_toolkits


def pytest_configure(config):
    config.addinivalue_line("markers", "mm: MMDetection / MMSegmentation integration (needs the mm extra)")


def pytest_collection_modifyitems(config, items):
    missing = missing_toolkits()
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.mm)
            if missing and not getattr(item.module, "RUNS_WITHOUT_MM", False):
                item.add_marker(pytest.mark.skip(
                    reason=f"mm extra not installed ({', '.join(missing)}): bash tools/install_mm.sh .venv"))
