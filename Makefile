# Set-up and the two commands the README promises. torch is pinned first: the CPU wheel of
# 2.13.0 is what this machine (and CI) install offline; an unpinned torch pulls a CUDA build.
PYTHON ?= python3
PIP := $(PYTHON) -m pip
export HF_HUB_OFFLINE := 1

.PHONY: install demo test test-all lint leaderboard bench

install:
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e ".[test]"

# The main job, offline: score the shipped SAE on the embedded tiny-ioi model.
demo: install
	saebench run --sae baselines/saes/tiny-ioi/L1-resid_pre-END/topk-k6-general --no-leaderboard --json-out runs/demo.json

lint:
	ruff check .

# The default test run (< 15 minutes on 2 cores); slow tests: make test-all.
test: install lint
	$(PYTHON) -m pytest -q

test-all: install
	$(PYTHON) -m pytest -q -m ""

# The nodes of the shipped leaderboard, chosen from the causal map (leaderboard/map/): where
# each attribute changes tiny-ioi's answer when patched and the supervised edit reaches it.
LEADERBOARD_NODES ?= blocks.1.hook_resid_pre@END blocks.1.hook_resid_pre@S2 blocks.0.attn.hook_z[2]@END

# Rebuild the causal map, leaderboard/tiny-ioi.csv, its plots and README from scratch
# (about 40 minutes on 2 CPU cores).
leaderboard: install
	saebench map --model tiny-ioi --n-prompts 1000 --quiet --out leaderboard/map/tiny-ioi-ioi
	rm -rf leaderboard/tiny-ioi.csv baselines/saes/tiny-ioi
	$(PYTHON) -m saebench_baselines.sweep --out baselines/saes/tiny-ioi --leaderboard leaderboard/tiny-ioi.csv \
		--processes 3 $(foreach node,$(LEADERBOARD_NODES),--node '$(node)')
	saebench leaderboard plot leaderboard/tiny-ioi.csv --out leaderboard/plots
	saebench leaderboard export leaderboard/tiny-ioi.csv --readme leaderboard/README.md --plots leaderboard/plots

bench: install
	$(PYTHON) benchmarks/bench_scoring.py
