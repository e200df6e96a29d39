# Quick start:  make repro     (set up .venv, run the DVC pipeline on the embedded sample)
#               make test      (set up .venv, run the fast tests: all but those marked slow)
#               make test-all  (set up .venv, run every test, the slow ones too: what CI runs)
#               make lock      (pin what .venv holds into requirements.lock, which setup installs)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
# Stage commands in dvc.yaml call `python`: the venv's must come first on PATH.
export PATH := $(BIN):$(PATH)

# The tested package set, version for version (see the comment at its top): installed first, then
# the project itself without dependencies, so a fresh machine gets what the tests ran on.
LOCK := requirements.lock

.PHONY: setup lock repro test test-all bench paper dped-scale small-data cv pretrained clean

setup: $(STAMP)

$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -r $(LOCK)
	$(BIN)/python -m pip install --no-deps -e ".[dev]"
	$(BIN)/python -m pip check
	touch $(STAMP)

# Rewrite requirements.lock from what .venv holds now (after upgrading it and make test-all): its
# leading comment is kept; every package but pip and the project is pinned, and the CUDA packages
# that torch pulls in on Linux only are marked so.
lock:
	@test -x $(BIN)/python || { echo "no $(VENV) to freeze: run make setup first" >&2; exit 2; }
	{ sed '/^[^#]/,$$d' $(LOCK) 2>/dev/null; \
	  $(BIN)/python -m pip freeze --all --exclude-editable --exclude pip \
	  | sed -E 's/^((nvidia-|cuda-)[^=]*|triton)==(.*)$$/\1==\3 ; platform_system == "Linux"/'; \
	} > $(LOCK).tmp && mv $(LOCK).tmp $(LOCK)

repro: $(STAMP)
	$(BIN)/dvc repro

# pytest exits 5 when it collected no tests: say so instead of failing mysteriously.
PYTEST = $(BIN)/python -m pytest -q $(1); code=$$?; \
	if [ $$code -eq 5 ]; then echo "pytest collected no tests: check tests/ and the test paths in pyproject.toml" >&2; fi; \
	exit $$code

# The fast set: every test not marked slow (the slow ones: over ~5 s each, see pyproject.toml).
test: $(STAMP)
	$(call PYTEST,-m "not slow")

# Every test, the slow ones too (the real dvc CLI runs, real training, ONNX export).
test-all: $(STAMP)
	$(call PYTEST,)

bench: $(STAMP)
	$(BIN)/python bench/extract_bench.py
	$(BIN)/python bench/generator_cost.py
	$(BIN)/python bench/train_bench.py

# The paper setting: DPED iPhone from a local copy, ImageNet VGG19, a GPU run.
#   make paper ARCHIVE=/data/dped.zip
#   make paper ARCHIVE=/data/dped.zip GPUS=8                    (one node, torchrun, DDP/NCCL)
#   make paper ARCHIVE=/tmp/dped-scale.zip DEVICE=cpu STEPS=300 VGG=random   (a CPU rehearsal)
# (ImageNet VGG19 weights: $$TORCH_HOME/hub/checkpoints/vgg19-dcbb9e9d.pth, fetched when online.)
# README.md, "Training the paper model", has the times, resuming and watching a run.
ARCHIVE ?=
STEPS ?= 40000
DEVICE ?= cuda
VGG ?= imagenet
GPUS ?= 1
paper: $(STAMP)
	@test -n "$(ARCHIVE)" || { echo "usage: make paper ARCHIVE=/path/to/dped.zip (or tar, or folder)" >&2; exit 2; }
	$(BIN)/dvc exp run -n paper -S data.source=dped -S 'data.archive=$(abspath $(ARCHIVE))' -S data.phone=iphone \
	  -S loss.vgg_weights=$(VGG) -S train.device=$(DEVICE) -S train.gpus=$(GPUS) -S train.batch_size=64 \
	  -S train.steps=$(STEPS) -S train.lr_g=0.0001 -S train.lr_d=0.0001 -S train.log_every=100 \
	  -S train.val_every=1000 -S train.val_patches=1000 -S train.checkpoint_every=1000

# A DPED-sized archive (160,471 + 4,353 pairs, 10 full-size photos, 1.5 GB; about 2.5 minutes on
# 2 cores), for rehearsing the pipeline at the release's scale (bench/README.md, "DPED at full
# scale", has the per-stage figures and the commands that measured them):
#   make dped-scale && make paper ARCHIVE=/tmp/dped-scale/dped.zip DEVICE=cpu STEPS=200 VGG=random
SCALE_DIR ?= /tmp/dped-scale
dped-scale: $(STAMP)
	$(BIN)/python bench/dped_scale.py $(SCALE_DIR)/dped.zip

# The small-data recipe (recipes/small-data.yaml) as a DVC experiment on real DPED iPhone pairs:
#   make small-data DATA=../shared/dped-mini        (a DPED-layout folder or archive)
#   make small-data DATA=/data/ai-challenge.zip SOURCE=pirm
DATA ?=
SOURCE ?= dped
small-data: $(STAMP)
	@test -n "$(DATA)" || { echo "usage: make small-data DATA=/path/to/dped-mini (or SOURCE=pirm DATA=the PIRM zip)" >&2; exit 2; }
	$(BIN)/dvc exp run -n small-data $$($(BIN)/python -m stages.recipe recipes/small-data.yaml) \
	  -S data.source=$(SOURCE) -S 'data.archive=$(abspath $(DATA))' -S data.phone=iphone

# The recipe's 5-fold cross-validation over dped-mini's 200 pairs (what every recipe choice and
# the shipped model's card are measured on): 3 seeds x 5 folds, 2 processes; resumes per fold.
#   make cv                    (DPED_MINI=../shared/dped-mini by default; RECIPE=, SEEDS=, TAG=)
RECIPE ?= recipes/small-data.yaml
SEEDS ?= 0 1 2
TAG ?= small-data
cv: $(STAMP)
	$(BIN)/python bench/small_data.py --cv --recipe $(RECIPE) --seeds $(SEEDS) --jobs 2 --tag $(TAG) \
	  --work /tmp/small_data

# Regenerate the shipped model (models/pretrained/iphone-dped-mini.*) from the data you point at:
# trained on every pair (ALL_PAIRS=1; ALL_PAIRS=0 holds the test pairs out), its card quoting the
# cross-validation summary CV_METRICS (bench/small_data.py --cv) as its quality figures.
ALL_PAIRS ?= 1
CV_METRICS ?=
pretrained: $(STAMP)
	@test -n "$(DATA)" || { echo "usage: make pretrained DATA=/path/to/dped-mini [CV_METRICS=cv.json] (or SOURCE=pirm DATA=the PIRM zip)" >&2; exit 2; }
	SOURCE=$(SOURCE) ALL_PAIRS=$(ALL_PAIRS) CV_METRICS='$(CV_METRICS)' PYTHON=$(BIN)/python bash tools/pretrained.sh "$(DATA)"

clean:
	rm -rf $(VENV) *.egg-info
