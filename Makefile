# Two entry points: `make demo` and `make test`. Both create .venv on first use and are quiet
# and quick when nothing changed (installation is keyed on a stamp file newer than pyproject.toml).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
TORCH  ?= torch==2.13.0

.PHONY: demo test fetch clean-venv

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "Installing into $(VENV) (first run only)..."
	@$(PY) -m pip install -q --upgrade pip 2>&1 | grep -v -i "^warning: location" || true
	@# torch first, pinned, so nothing later pulls a CUDA build; then the rest.
	@$(PY) -m pip install -q "$(TORCH)" 2>&1 | grep -v -i "^warning: location" || true
	@$(PY) -m pip install -q -e ".[slicer,test]" 2>&1 | grep -v -i "^warning: location" || true
	@# acsconv declares heavy dependencies (torchvision, pandas, ...) that its operators do not use.
	@$(PY) -m pip install -q --no-deps "acsconv==0.1.1" 2>&1 | grep -v -i "^warning: location" || true
	@$(PY) -c "import torch, numpy, SimpleITK, cv2, slicer, vtk, acsconv.operators, pytest, slicerio, vermin" \
	  || { echo "Installation is incomplete (see messages above)"; exit 1; }
	@touch $(STAMP)

demo: $(STAMP)
	@$(VENV)/bin/snc data fetch
	@$(VENV)/bin/snc demo --out demo_output

test: $(STAMP)
	@# The ImageNet encoder file that the f2D v2 tests load (cached; instant once fetched).
	@$(VENV)/bin/snc models fetch > /dev/null
	@$(PY) -m pytest

fetch: $(STAMP)
	@$(VENV)/bin/snc data fetch

clean-venv:
	rm -rf $(VENV)
