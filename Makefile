# Two entry points (see README): `make demo` and `make test`. Both create and reuse a local venv.
VENV ?= .venv
PYTHON ?= python3.11
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.vssm-installed
# Test workers: CI has 2 cores; each worker runs torch single-threaded.
WORKERS ?= 2

.PHONY: demo test install install-mm

$(STAMP): pyproject.toml setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q torch==2.14.1 torchvision==0.29.1
	$(PIP) install -q -e ".[dev,demo,medical]"
	touch $(STAMP)

install: $(STAMP)

# MMDetection / MMSegmentation: builds mmcv 2.1.0 once (about 8 minutes on 2 cores), then reuses the wheel.
install-mm: $(STAMP)
	bash tools/install_mm.sh $(VENV)

demo: $(STAMP)
	$(PY) tools/demo.py
	$(PY) tools/demo_train_digits.py

test: install-mm
	bash tools/fetch_timm_tests.sh $(PY) > /dev/null
	OMP_NUM_THREADS=1 $(PY) -m pytest -n $(WORKERS) --dist loadfile -q
