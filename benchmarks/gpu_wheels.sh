#!/usr/bin/env bash
# Download, on this machine (package registries reachable), the wheels the GPU machine lacks, for its
# Python 3.12 x86-64: it already has torch, timm, transformers, tensorboard, opencv, pytest, numpy and
# PyYAML, and reaches no registry. The folder (ignored by git) travels with `run`'s `carry`
# (64 MiB in all); benchmarks/gpu_run.sh installs it there with --no-index --no-deps.
#   bash benchmarks/gpu_wheels.sh [DIR]   (default gpu_wheels)
set -euo pipefail
DIR=${1:-gpu_wheels}
mkdir -p "$DIR"
# mmengine-lite and its pure-Python needs; albumentations 2.0.8 (vlreg's image augmentations) and
# what it imports (its opencv requirement is left out: the GPU machine has opencv); nltk (stopwords)
PKGS=(mmengine-lite==0.10.7 addict yapf platformdirs termcolor rich markdown-it-py mdurl pygments
      albumentations==2.0.8 albucore pydantic pydantic-core annotated-types typing-inspection
      typing-extensions stringzilla simsimd scipy nltk click joblib regex tqdm)
python3 -m pip download --quiet --only-binary=:all: --no-deps --python-version 3.12 \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
    --implementation cp -d "$DIR" "${PKGS[@]}"
du -sh "$DIR"
