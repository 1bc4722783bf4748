"""Package layout: the scan lives in the top-level kernels/ folder and installs as ``vssm.kernels``."""

from setuptools import find_packages, setup

packages = ["vssm", *(f"vssm.{p}" for p in find_packages("vssm"))]
packages += ["vssm.kernels", *(f"vssm.kernels.{p}" for p in find_packages("kernels"))]

setup(packages=packages, package_dir={"vssm": "vssm", "vssm.kernels": "kernels"})
