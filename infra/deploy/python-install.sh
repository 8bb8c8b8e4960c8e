#!/usr/bin/env bash
# Installs genstream into a Python environment: the one install step both the checkout
# (infra/setup.sh) and the container images (infra/deploy/docker/Dockerfile) run, so that
# what a machine and an image hold cannot drift apart.
# Usage: infra/deploy/python-install.sh PYTHON SOURCE_DIR EXTRAS [--editable]
#   EXTRAS: comma-separated optional dependency groups of pyproject.toml ("" for none)
set -euo pipefail

(( $# >= 3 )) || { echo "usage: $0 PYTHON SOURCE_DIR EXTRAS [--editable]" >&2; exit 2; }
python=$1 source=$2 extras=$3
editable=()
[[ ${4:-} == --editable ]] && editable=(-e)

target=$source
[[ -n $extras ]] && target="$source[$extras]"

"$python" -m pip install -q --upgrade pip
"$python" -m pip install -q -c "$source/infra/deploy/constraints.txt" "${editable[@]}" "$target"
