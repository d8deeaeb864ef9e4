#!/usr/bin/env bash
# `make install`: a virtual environment with torch (CPU wheel, first), then saebench with its
# test extras. Installs with uv when uv itself can be installed from PyPI (its `pip install` is
# several times faster than pip's), else with pip; prints each stage with the time it took.
# uv is given pip's own configuration (extra indexes, find-links, constraints, certificate:
# `pip config list`), so it sees the same packages pip would, e.g. a local CPU torch wheel.
# Settings (from the Makefile): PYTHON, VENV, VENV_FLAGS, TORCH (empty: keep the torch there),
# INSTALLER (auto, uv or pip).
set -euo pipefail
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
VENV_FLAGS=${VENV_FLAGS:-}
TORCH=${TORCH-torch==2.13.0}
INSTALLER=${INSTALLER:-auto}
BIN=$VENV/bin
begin=$SECONDS
last=$SECONDS

stage() {  # stage NAME: print the stage with the elapsed seconds of the one before
    local now=$SECONDS
    printf '==> %s  (%ds so far)\n' "$*" "$((now - begin))"
    last=$now
}

stage "1/5 virtual environment $VENV ($PYTHON $VENV_FLAGS)"
test -x "$BIN/python" || "$PYTHON" -m venv $VENV_FLAGS "$VENV"
PIP=("$BIN/python" -m pip install --disable-pip-version-check --progress-bar off)

if [ -n "$TORCH" ]; then
    stage "2/5 $TORCH, the CPU wheel, with pip (an unpinned torch pulls a CUDA build)"
    "${PIP[@]}" --quiet "$TORCH"
    "$BIN/python" -W ignore -c 'import torch; print("    torch", torch.__version__)'
else
    stage "2/5 torch: kept as it is in $VENV (TORCH is empty)"
fi

use_uv=0
if [ "$INSTALLER" != pip ]; then
    stage "3/5 uv, the fast installer, from PyPI"
    if "${PIP[@]}" --quiet uv && "$BIN/uv" --version; then
        use_uv=1
    elif [ "$INSTALLER" = uv ]; then
        echo "error: uv could not be installed (INSTALLER=uv)" >&2
        exit 1
    else
        echo "    uv could not be installed: installing with pip"
    fi
else
    stage "3/5 installer: pip (INSTALLER=pip)"
fi

install() {  # install ARGS...: with uv (pip's configuration passed on) or pip
    if [ "$use_uv" = 1 ]; then
        local get="$BIN/python -m pip config get"
        local extra links constraint cert
        extra=$($get global.extra-index-url 2>/dev/null || true)
        links=$($get global.find-links 2>/dev/null || true)
        constraint=$($get global.constraint 2>/dev/null || true)
        cert=$($get global.cert 2>/dev/null || true)
        UV_EXTRA_INDEX_URL="${UV_EXTRA_INDEX_URL:-$extra}" \
        UV_FIND_LINKS="${UV_FIND_LINKS:-$links}" \
        UV_CONSTRAINT="${UV_CONSTRAINT:-$constraint}" \
        SSL_CERT_FILE="${SSL_CERT_FILE:-$cert}" \
        UV_INDEX_STRATEGY="${UV_INDEX_STRATEGY:-unsafe-best-match}" \
        UV_HTTP_TIMEOUT="${UV_HTTP_TIMEOUT:-180}" \
            "$BIN/uv" pip install --python "$BIN/python" "$@"
    else
        "${PIP[@]}" "$@"
    fi
}

stage "4/5 saebench and its test extras (transformer_lens, sae-lens, ray, ...)"
install -e ".[test,ray]"
# SAEBench's own output classes validate `leaderboard export --format saebench` in the tests;
# they need only pydantic, and sae-bench's full dependencies would pin numpy<2.
stage "5/5 sae-bench==0.6.0 (its output classes only, --no-deps)"
install --no-deps sae-bench==0.6.0
"$BIN/python" -c 'import torch; assert "+cpu" in torch.__version__ or not torch.version.cuda, torch.__version__' \
    || echo "    note: torch $("$BIN/python" -c 'import torch; print(torch.__version__)') is not a CPU build"
stage "installed in $VENV"
