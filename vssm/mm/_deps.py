"""One clear error when the mm extra is missing, instead of a traceback from deep inside mmdet."""

import importlib.util

# import name -> what to install
_REQUIRED = {
    "mmengine": "mmengine==0.10.7",
    "mmcv": "mmcv==2.1.0 (with compiled ops)",
    "mmdet": "mmdet==3.3.0",
    "mmseg": "mmsegmentation==1.2.2",
}

INSTALL_HINT = "bash tools/install_mm.sh <venv>   (builds mmcv 2.1.0 once, then installs the `mm` extra)"


def _present(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module blocked in sys.modules
        return False


def missing_mm_packages() -> list[str]:
    missing = [pip for mod, pip in _REQUIRED.items() if not _present(mod)]
    if _present("mmcv") and not _present("mmcv._ext"):
        # mmcv-lite: mmdet and mmseg import mmcv.ops while their model packages load
        missing.append("mmcv compiled ops (mmcv-lite is installed; mmdet/mmseg need mmcv.ops)")
    return missing


def require_mm_packages() -> None:
    missing = missing_mm_packages()
    if missing:
        raise ImportError(
            "vssm.mm needs the MMDetection/MMSegmentation stack; missing: " + ", ".join(missing)
            + ". Install it with: " + INSTALL_HINT
        )
