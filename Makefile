# Two commands for a fresh machine:
#   make demo   set up, install the data, train a model for a few minutes, sample, write a report
#   make test   set up and run the test suite
# Options: make demo MODEL=vae DATASET=mnist MINUTES=5
#          make demo DATASET=emoji   (colour: 32x32 by default; IMAGE_SIZE=64 for 64x64)

PYTHON  ?= python3
VENV    ?= .venv
DATASET ?= fashion-mnist
IS_COLOUR = $(filter emoji cifar10 cifar100 celeba64 svhn,$(DATASET))
# On emoji at 32x32 cgan is not the best sampler after 15 minutes: sngan (FID 45.0) and a vae with a
# Gaussian-learned likelihood and a GMM prior (36.9) are, cgan 158.2 (BENCHMARKS.md, emoji-32); try
# make demo DATASET=emoji MODEL=sngan. The demo keeps cgan everywhere: its short runs were measured.
MODEL   ?= cgan
# Colour data sets at 32x32 by default (emoji's own images are 64x64: IMAGE_SIZE=64).
IMAGE_SIZE ?= $(if $(IS_COLOUR),32,)
# The inpainting box: the middle half of the image (28x28: 7..21).
SIZE_PX  = $(if $(IMAGE_SIZE),$(IMAGE_SIZE),28)
BOX      = $(shell echo $$(( $(SIZE_PX) / 4 )),$$(( $(SIZE_PX) / 4 )),$$(( $(SIZE_PX) * 3 / 4 )),$$(( $(SIZE_PX) * 3 / 4 )))
SIZE_ARG = $(if $(IMAGE_SIZE),--image-size $(IMAGE_SIZE),)
MINUTES ?= 3
EVAL_N  ?= 5000
RUN     ?= runs/demo-$(MODEL)-$(DATASET)
BIN      = $(VENV)/bin
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test data bench docs clean serve

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch is pinned to 2.13.0 in pyproject.toml: the CPU build, not a multi-GB CUDA one.
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

# Fashion-MNIST comes from Debian's package; other data sets from genforge's own lookup
# (--data-dir, $$GENFORGE_DATA, the cache, then the canonical mirrors).
data: $(BIN)/.installed
	@if [ "$(DATASET)" = fashion-mnist ] && [ ! -d /usr/share/datasets/fashion-mnist ]; then \
	  $(SUDO) apt-get install -y -q dataset-fashion-mnist || \
	  { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q dataset-fashion-mnist; }; fi
	$(BIN)/genforge data fetch $(DATASET)

# The demo trains cgan, the family best for a few minutes (Fashion-MNIST FID 16.6 after 5
# minutes, dcgan 241: BENCHMARKS.md), then adds to its report the evaluation against the
# real-vs-real floor and one edit (a box of 8 test images filled in by the model).
demo: data
	rm -rf $(RUN)
	$(BIN)/genforge train --model $(MODEL) --dataset $(DATASET) $(SIZE_ARG) --minutes $(MINUTES) --out $(RUN)
	$(BIN)/genforge eval $(RUN) --n $(EVAL_N)
	$(BIN)/genforge edit $(RUN) --input $(DATASET):test:0-7 --op inpaint --box $(BOX) \
	  --out $(RUN)/inpaint.png --report --no-progress
	$(BIN)/genforge sample $(RUN) --n 100 --grid --out $(RUN)/grid.png
	@echo "Report: $(RUN)/report.md   (sample grid: $(RUN)/grid.png)"

# The web page and the API on the demo run (after `make demo`); prints the address, Ctrl-C stops.
serve: $(BIN)/.installed
	@test -f $(RUN)/config.json || { echo "no run at $(RUN): run make demo first"; exit 2; }
	$(BIN)/genforge serve $(RUN)

test: data
	$(BIN)/python -m pytest -q

bench: data
	$(BIN)/python bench/throughput.py --write-md BENCHMARKS.md

# The documentation site (MkDocs + Material, sources in docs/): --strict fails on any broken link.
docs: $(BIN)/.installed
	$(BIN)/python -m pip install -q -e '.[docs]'
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) runs build src/*.egg-info
