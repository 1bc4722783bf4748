"""The mm extra is optional: vssm works without it, vssm.mm says what is missing; with it, the pins hold."""

import subprocess
import sys
import time
from importlib.metadata import version

from mm_helpers import ROOT

RUNS_WITHOUT_MM = True  # the first test needs no toolkit; the others skip themselves

_BLOCK_MM = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('mmdet', 'mmseg', 'mmcv', 'mmengine'):
            raise ModuleNotFoundError(f"No module named '{name}'")
sys.meta_path.insert(0, _Block())
"""


def test_vssm_works_and_vssm_mm_names_what_is_missing_without_the_extra():
    code = _BLOCK_MM + """
import timm, torch, vssm
m = timm.create_model('vmamba_tiny', num_classes=0, depths=(1, 1, 1, 1), dims=16)
assert m(torch.randn(1, 3, 64, 64)).shape == (1, 128)
try:
    import vssm.mm
except ImportError as e:
    print('ERROR:', e)
else:
    raise SystemExit('vssm.mm imported without the toolkits')
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    msg = out.stdout
    for name in ("mmengine", "mmcv", "mmdet", "mmsegmentation", "tools/install_mm.sh"):
        assert name in msg, msg


def _require_mm():
    import pytest

    from mm_helpers import missing_toolkits as _missing_toolkits

    if _missing_toolkits():
        pytest.skip("mm extra not installed")


def test_setuptools_stays_below_70_at_run_time():
    # mmengine 0.10.7 imports pkg_resources for `mmdet::` / `mmseg::` config bases
    _require_mm()
    major = int(version("setuptools").split(".")[0])
    assert major < 70, f"setuptools {version('setuptools')}: rerun tools/install_mm.sh (it pins <70)"
    import pkg_resources  # noqa: F401


def test_install_script_is_fast_when_installed():
    _require_mm()
    t = time.time()
    out = subprocess.run(["bash", str(ROOT / "tools/install_mm.sh"), sys.prefix],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "already installed" in out.stdout
    assert time.time() - t < 60
    import mmcv.ops  # noqa: F401  (compiled ops, not mmcv-lite)
