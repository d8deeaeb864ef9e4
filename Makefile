# Set-up and the two commands the README promises (`make demo`, `make test`).
#
# Everything runs from a virtual environment that `make install` creates at $(VENV) (default
# .venv) with $(PYTHON) (default python3), so it works where the system Python is externally
# managed (PEP 668) and needs no activation: every command below names $(BIN)/... itself.
# Overrides: `make test PYTHON=python3.11 VENV=/tmp/sb-env`; VENV_FLAGS=--system-site-packages
# reuses packages the base Python already has (faster, and works offline when they are there).
# torch is pinned first: the CPU wheel of 2.13.0; an unpinned torch pulls a CUDA build (on a
# GPU machine, install the torch you want into $(VENV) first and set TORCH= to keep it).
PYTHON ?= python3
VENV ?= .venv
VENV_FLAGS ?=
TORCH ?= torch==2.13.0
INSTALLER ?= auto
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
# Installed once per change of pyproject.toml: `make install` again is a no-op, `make reinstall`
# forces it.
STAMP := $(VENV)/.saebench-installed
export HF_HUB_OFFLINE := 1

.PHONY: install reinstall demo test test-all lint leaderboard leaderboard-gt bench chromium site

install: $(STAMP)

# The stages (venv, torch, uv, saebench, sae-bench) are in scripts/install.sh: uv when it can be
# installed from PyPI (INSTALLER=pip forces pip), pip's configuration passed on to it.
$(STAMP): pyproject.toml scripts/install.sh
	PYTHON='$(PYTHON)' VENV='$(VENV)' VENV_FLAGS='$(VENV_FLAGS)' TORCH='$(TORCH)' \
		INSTALLER='$(INSTALLER)' bash scripts/install.sh
	touch $@

reinstall:
	rm -f $(STAMP)
	$(MAKE) install

# The main job, offline: score the shipped SAE on the embedded tiny-ioi model.
demo: install
	$(BIN)/saebench run --sae baselines/saes/tiny-ioi/L3-resid_post-END/topk-k6-general --no-leaderboard --json-out saebench-results/demo.json

lint: install
	$(BIN)/ruff check .

# Headless Chromium for the site's browser test (tests/test_site.py): Debian's package, driven
# by Playwright through its executable (Playwright's own browser download is not needed).
chromium:
	command -v chromium >/dev/null || (apt-get update && (apt-get install -y chromium || apt-get install -y chromium))

# The leaderboard web page of both shipped leaderboards (not committed): open _site/index.html.
SITE ?= _site
site: install
	$(BIN)/saebench leaderboard site leaderboard/tiny-ioi.csv leaderboard/tiny-gt.csv --out $(SITE)

# The test suite (< 15 minutes on 2 cores). `pytest -m slow` would select tests marked slow;
# test-all runs every test whatever its marks.
test: install lint chromium
	$(BIN)/python -m pytest -q

test-all: install chromium
	$(BIN)/python -m pytest -q -m ""

# The nodes of the shipped leaderboard, chosen from the causal maps (leaderboard/map/): where
# each attribute changes tiny-ioi's answer when patched and the supervised edit reaches it
# (docs/tiny-ioi.md §3). `pos` is causal only on the order-dependent task ioi-order.
LEADERBOARD_NODES ?= blocks.3.hook_resid_post@END blocks.0.attn.hook_z[3]@END blocks.1.hook_resid_pre@END
ORDER_LEADERBOARD_NODES ?= blocks.0.attn.hook_k[3]@S2 blocks.0.attn.hook_z[3]@END

# Rebuild the causal maps, leaderboard/tiny-ioi.csv, its plots and README from scratch
# (about 90 minutes on 2 CPU cores).
leaderboard: install
	$(BIN)/saebench map --model tiny-ioi --n-prompts 1000 --quiet --out leaderboard/map/tiny-ioi-ioi
	$(BIN)/saebench map --model tiny-ioi --task ioi-order --n-prompts 1000 --quiet --out leaderboard/map/tiny-ioi-ioi-order
	rm -rf leaderboard/tiny-ioi.csv baselines/saes/tiny-ioi baselines/saes/tiny-ioi-order
	$(BIN)/python -m saebench_baselines.sweep --out baselines/saes/tiny-ioi --leaderboard leaderboard/tiny-ioi.csv \
		--no-score --processes 2 $(foreach node,$(LEADERBOARD_NODES),--node '$(node)')
	$(BIN)/python -m saebench_baselines.sweep --task ioi-order --out baselines/saes/tiny-ioi-order \
		--leaderboard leaderboard/tiny-ioi.csv --no-score --processes 2 $(foreach node,$(ORDER_LEADERBOARD_NODES),--node '$(node)')
	$(BIN)/saebench sweep sweeps/tiny-ioi-leaderboard.toml
	$(BIN)/saebench sweep sweeps/tiny-ioi-order-leaderboard.toml
	$(BIN)/saebench leaderboard plot leaderboard/tiny-ioi.csv --out leaderboard/plots
	$(BIN)/saebench leaderboard export leaderboard/tiny-ioi.csv --readme leaderboard/README.md --plots leaderboard/plots

# The Greater-Than leaderboard on the second embedded model, tiny-gt: the nodes where its causal
# map finds `yy` causal and linearly editable, after some computation (no token embedding), and
# where a random dictionary's `yy` coverage is at most 0.2 (issue 22): layer 0's head 0 output
# at END, the head that moves the start year. The residual stream at END (causal too) is left
# out: a random dictionary still covers 0.37-0.42 of the years there. About 10 minutes on 2 cores.
GT_LEADERBOARD_NODES ?= blocks.0.attn.hook_z[0]@END

leaderboard-gt: install
	$(BIN)/saebench map --model tiny-gt --task greater-than --positions NOUN,XX1,YY,END --n-prompts 1000 \
		--quiet --out leaderboard/map/tiny-gt-greater-than
	rm -rf leaderboard/tiny-gt.csv baselines/saes/tiny-gt
	$(BIN)/python -m saebench_baselines.sweep --model tiny-gt --task greater-than --out baselines/saes/tiny-gt \
		--leaderboard leaderboard/tiny-gt.csv --no-score --processes 2 $(foreach node,$(GT_LEADERBOARD_NODES),--node '$(node)')
	$(BIN)/saebench sweep sweeps/tiny-gt-leaderboard.toml
	$(BIN)/saebench leaderboard plot leaderboard/tiny-gt.csv --out leaderboard/plots/tiny-gt
	$(BIN)/saebench leaderboard export leaderboard/tiny-gt.csv --readme leaderboard/tiny-gt.md --plots leaderboard/plots/tiny-gt

bench: install
	$(BIN)/python benchmarks/bench_scoring.py
