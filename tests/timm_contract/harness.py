"""Load timm's own tests/test_models.py restricted to our models (see families.py and conftest.py).

The file comes from the timm sdist that ``tools/fetch_timm_tests.sh`` unpacks into the cache folder
(``$VSSM_CACHE``, default ``~/.cache/vssm``); it is never copied into this repository. We write a patched
copy next to it with three small insertions (each anchored on a line of timm 1.0.31's file; a missing
anchor fails loudly): the model listings it parametrizes over keep only our models, and our modules join
``FEAT_INTER_FILTERS`` / ``NON_STD_FILTERS`` as a family accepted into timm would.
"""

from __future__ import annotations

import fnmatch
import os
import sys
import tempfile
from pathlib import Path
from typing import Callable, List, Optional

import vssm  # noqa: F401  (registers our models before timm's test file lists them)

from families import FAMILIES

TIMM_TESTS_VERSION = os.environ.get("TIMM_TESTS_VERSION", "1.0.31")
MODULE_NAME = "vssm_timm_test_models"
CFG_TESTS = {"test_model_default_cfgs", "test_model_default_cfgs_non_std"}
# timm tests that never apply here, with the reason
DESELECT = {
    "test_model_load_pretrained": "downloads released weights (no network in CI)",
    "test_model_features_pretrained": "downloads released weights (no network in CI)",
    "test_model_inference": "downloads reference tensors from the Hugging Face hub",
}


def cache_dir() -> Path:
    root = Path(os.environ.get("VSSM_CACHE", Path.home() / ".cache" / "vssm"))
    return root / f"timm-tests-{TIMM_TESTS_VERSION}"


def timm_test_file() -> Optional[Path]:
    path = cache_dir() / "test_models.py"
    return path if path.is_file() else None


def full_models() -> set:
    return {m for f in FAMILIES for m in f.models}


def is_ours(name: str) -> bool:
    """A model name (possibly with a pretrained tag) that some family runs through the contract."""
    base = name.split(".")[0]
    if base in full_models():
        return True
    return any(fnmatch.fnmatch(base, p) for f in FAMILIES for p in f.cfg_only)


def is_cfg_only(name: str) -> bool:
    return is_ours(name) and name.split(".")[0] not in full_models()


def family_of(name: str):
    base = name.split(".")[0]
    for f in FAMILIES:
        if base in f.models or any(fnmatch.fnmatch(base, p) for p in f.cfg_only):
            return f
    return None


def skip_reason(name: str, test: str) -> Optional[str]:
    """The reason a family gives for skipping one of timm's tests (``Family.skip``), or None."""
    family = family_of(name)
    return None if family is None else dict(family.skip).get(test)


def restrict(list_fn: Callable[..., List[str]]) -> Callable[..., List[str]]:
    def listing(*args, **kwargs):
        return [n for n in list_fn(*args, **kwargs) if is_ours(n)]
    return listing


_ANCHORS = (
    ("from timm.models import get_notrace_modules, get_notrace_functions\n",
     "from harness import restrict as _vssm_restrict\n"
     "list_models, list_pretrained = _vssm_restrict(list_models), _vssm_restrict(list_pretrained)\n"),
    ("NUM_NON_STD = len(NON_STD_FILTERS)\n",
     "from families import FAMILIES as _VSSM_FAMILIES\n"
     "FEAT_INTER_FILTERS += [f.module for f in _VSSM_FAMILIES if not f.non_std]\n"
     "NON_STD_FILTERS += [p for f in _VSSM_FAMILIES if f.non_std for p in (*f.models, *f.cfg_only)]\n"),
)


def patched_source(text: str) -> str:
    for anchor, insertion in _ANCHORS:
        if anchor not in text:
            raise RuntimeError(f"timm's test_models.py ({TIMM_TESTS_VERSION}) has no line {anchor.strip()!r}; "
                               "update tests/timm_contract/harness.py for this timm version")
        where = "before" if anchor.startswith("NUM_NON_STD") else "after"
        text = text.replace(anchor, insertion + anchor if where == "before" else anchor + insertion, 1)
    return text


def load_timm_tests():
    """Import the patched copy of timm's test file as a module (written atomically: xdist workers race)."""
    source = timm_test_file()
    if source is None:
        return None
    target = cache_dir() / f"{MODULE_NAME}.py"
    text = patched_source(source.read_text())
    if not target.is_file() or target.read_text() != text:
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".py")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, target)
    if str(target.parent) not in sys.path:
        sys.path.append(str(target.parent))
    import importlib
    return importlib.import_module(MODULE_NAME)
