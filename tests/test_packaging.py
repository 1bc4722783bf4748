"""The kernels/ folder installs as vssm.kernels, both editable and from a built wheel; it imports no models."""

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import vssm

ROOT = Path(__file__).resolve().parents[1]


def test_kernels_import_no_model_code():
    for path in (ROOT / "kernels").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] if node.level == 0 else []
            for name in names:
                assert not name.startswith("vssm"), f"{path.name} imports {name}: kernels/ must not know vssm"


def test_installed_package_maps_kernels():
    assert Path(vssm.kernels.__file__).name == "__init__.py"
    assert Path(vssm.kernels.__file__).parent.name in ("kernels",)


@pytest.mark.slow
def test_wheel_contains_kernels_and_imports(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
                   check=True)
    wheel = next(tmp_path.glob("vssm-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "vssm/kernels/__init__.py" in names and "vssm/kernels/routes.py" in names
    assert "vssm/models/__init__.py" in names
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True)
    code = ("import vssm.kernels as k, pathlib; p = pathlib.Path(k.__file__);"
            "assert p.parent.name == 'kernels' and p.parent.parent.name == 'vssm', p;"
            "print(k.cross2d().name)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(target)},
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "cross2d"
