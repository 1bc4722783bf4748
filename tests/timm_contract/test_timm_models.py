"""timm's own tests/test_models.py, run on our models (see conftest.py, harness.py, families.py)."""

import pytest

import harness

_timm_tests = harness.load_timm_tests()
if _timm_tests is None:
    pytest.skip(f"timm's test_models.py is not in {harness.cache_dir()}: run tools/fetch_timm_tests.sh",
                allow_module_level=True)

globals().update({k: v for k, v in vars(_timm_tests).items() if k.startswith("test_") or k == "cfg_device"})
