#!/usr/bin/env bash
# Install PyTorch and torchvision, as one matching pair, into the environment of the Python
# given as the first argument (default .venv/bin/python). torchvision's operators are built
# against one torch release and build; the image processors of the qwen-vl and smolvlm2
# captioners need them.
#
# - No torch: torch==$TORCH_VERSION (default 2.14.1) with torchvision==$TORCHVISION_VERSION
#   (default: the release made for that torch, 0.29.1 for 2.14.1), from $TORCH_INDEX_URL when
#   set (e.g. https://download.pytorch.org/whl/cu128).
# - A torch already there (a CUDA build the user installed) is kept, and so is a torchvision
#   that works beside it. Otherwise the torchvision made for that torch (torch 2.N.P ->
#   torchvision 0.(N+15).P, or $TORCHVISION_VERSION) is installed with torch pinned to the
#   build present: pip fails rather than replace it.
# - A torchvision that cannot run its operators beside the torch is removed, and the script
#   fails saying what to do. TORCHVISION_VERSION=none installs none: the qwen-vl and smolvlm2
#   captioners are then not available; the others are.
set -euo pipefail

python=${1:-.venv/bin/python}
pip=("$python" -m pip install --quiet)
index=()
[[ -n "${TORCH_INDEX_URL:-}" ]] && index=(--index-url "$TORCH_INDEX_URL")
vision=${TORCHVISION_VERSION:-}
# Runs one operator of torchvision's compiled library: a wheel built for another torch imports
# but has none ("operator torchvision::nms does not exist").
works="import torch, torchvision; torchvision.ops.nms(torch.zeros(1, 4), torch.ones(1), 0.5)"

# The torchvision release made for torch version $1 (2.N.P, any suffix: 0.(N+15).P).
matching() {
    [[ "$1" =~ ^2\.([0-9]+)\.([0-9]+) ]] || {
        echo "torch.sh: no torchvision release is known for torch $1: set TORCHVISION_VERSION" >&2
        exit 1
    }
    echo "0.$((BASH_REMATCH[1] + 15)).${BASH_REMATCH[2]}"
}

if torch=$("$python" -c "import torch; print(torch.__version__)" 2>/dev/null); then
    if [[ "$vision" == none ]] || "$python" -c "$works" 2>/dev/null; then
        exit 0
    fi
    echo "torch.sh: keeping torch $torch; installing the torchvision made for it" >&2
else
    torch=${TORCH_VERSION:-2.14.1}
fi
# A torch present is pinned to its very version and build: pip fails rather than replace it.
wanted=("torch==$torch")
if [[ "$vision" != none ]]; then
    vision=${vision:-$(matching "$torch")}
    wanted+=("torchvision==$vision")
fi
"${pip[@]}" "${wanted[@]}" "${index[@]}"
[[ "$vision" == none ]] && exit 0

if ! error=$("$python" -c "$works" 2>&1); then
    "$python" -m pip uninstall --quiet --yes torchvision
    cat >&2 <<EOF
torch.sh: torchvision does not work beside torch $torch, so it was removed:
${error##*$'\n'}
Install the torchvision build made for this torch (from the index it came from:
TORCH_INDEX_URL=...), or remove .venv to get torch ${TORCH_VERSION:-2.14.1} with its torchvision,
or set TORCHVISION_VERSION=none to go without it (the qwen-vl and smolvlm2 captioners then
are not available).
EOF
    exit 1
fi
