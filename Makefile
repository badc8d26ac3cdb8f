# Two commands set everything up on a fresh machine:
#   make demo   core install (about 2.5 minutes the first time), then the demo
#   make test   core + accel (torch_scatter/torch_sparse built from source, about
#               20 minutes the first time, seconds afterwards thanks to pip's wheel cache)
PYTHON ?= python3
VENV ?= .venv
CONSTRAINTS ?= constraints.txt
PIP = $(VENV)/bin/pip
PY = $(VENV)/bin/python
PIPC = $(PIP) install --disable-pip-version-check -c $(CONSTRAINTS)

.PHONY: demo test install install-accel install-distributed clean

$(VENV)/.core-stamp: pyproject.toml $(CONSTRAINTS)
	@echo ">>> [setup] creating $(VENV) and installing torch 2.13.0 (CPU) + the core package (about 2.5 minutes the first time)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@start=$$(date +%s); \
	$(PIPC) -q torch==2.13.0 && \
	$(PIPC) -q -e . && \
	echo ">>> [setup] core ready in $$(( $$(date +%s) - start )) s"
	@touch $@

$(VENV)/.accel-stamp: $(VENV)/.core-stamp
	@echo ">>> [setup] installing accel + test + text + image + clip extras: torch_scatter (about 8 min) and torch_sparse (about 13 min) compile from source the first time; pip's wheel cache makes later installs take seconds"
	@start=$$(date +%s); \
	$(PIPC) -q --no-build-isolation torch_scatter && \
	$(PIPC) -q --no-build-isolation torch_sparse && \
	$(PIPC) -q --no-build-isolation -e ".[accel,test,text,image,clip]" && \
	echo ">>> [setup] accel + test + text + image + clip extras ready in $$(( $$(date +%s) - start )) s"
	@touch $@

# TorchRec for the sharded entity table: its pure-Python dependencies and the CPU FBGEMM through
# the extra, then torchrec without its declared CUDA fbgemm-gpu
$(VENV)/.distributed-stamp: $(VENV)/.accel-stamp
	@echo ">>> [setup] installing the distributed extra (TorchRec 1.8.0, FBGEMM CPU 1.8.0)"
	$(PIPC) -q --no-build-isolation -e ".[distributed]" && \
	$(PIPC) -q --no-deps torchrec==1.8.0
	@touch $@

install: $(VENV)/.core-stamp
install-accel: $(VENV)/.accel-stamp
install-distributed: $(VENV)/.distributed-stamp

demo: $(VENV)/.core-stamp
	$(PY) examples/demo.py

test: $(VENV)/.distributed-stamp
	$(PY) -m pytest -q tests

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache outputs
