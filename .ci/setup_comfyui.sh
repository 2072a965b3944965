#!/usr/bin/env bash
# Prepare a ComfyUI checkout for the `comfyui` tests and the headless main job, on CPU-only torch.
# Usage: [FRAMELEVEL_PIP_ARGS="-c LOCK"] .ci/setup_comfyui.sh COMFYUI_DIR [PYTHON]
# Works for every tree in ../shared/comfyui (0.3.64 and 0.33.0). It installs ComfyUI's requirements
# without letting pip replace torch, adds `requests` (imported by the server but not listed by
# 0.3.64), and makes the registry's CUDA-only torchvision and torchaudio wheels importable on CPU:
# - torchvision: its two fake-op registrations become no-ops when its C extension is missing;
# - torchaudio (listed and imported at start-up since the LTX-2 audio VAE, ComfyUI 0.4x/0.33): installed
#   without dependencies and without its compiled libraries, so it runs as pure Python.
set -euo pipefail
comfy_dir=${1:?usage: setup_comfyui.sh COMFYUI_DIR [PYTHON]}
python=${2:-python}
torch_version=$("$python" -c 'import torch; print(torch.__version__.split("+")[0])')
constraints=$(mktemp)
echo "torch==${torch_version}" > "$constraints"
grep -vE '^(torch|torchvision|torchaudio)([<>=~ ].*)?$' "$comfy_dir/requirements.txt" > "$constraints.req"
# FRAMELEVEL_PIP_ARGS: more pip arguments, e.g. CI's lock for this venv (-c .ci/lock/comfyui-0.33.0.txt)
# shellcheck disable=SC2086
"$python" -m pip install -q -c "$constraints" ${FRAMELEVEL_PIP_ARGS:-} -r "$constraints.req" requests
"$python" -m pip install -q --no-deps "torchvision==0.28.0"
meta=$("$python" -c 'import importlib.util, os; print(os.path.join(os.path.dirname(importlib.util.find_spec("torchvision").origin), "_meta_registrations.py"))')
sed -i -E 's/^@torch\.library\.register_fake\("torchvision::(nms|qnms)"\)/@(torch.library.register_fake("torchvision::\1") if torchvision.extension._has_ops() else (lambda f: f))/' "$meta"
if grep -qE '^torchaudio([<>=~ ].*)?$' "$comfy_dir/requirements.txt"; then
    "$python" -m pip install -q --no-deps "torchaudio==2.11.1"
    audio_lib=$("$python" -c 'import importlib.util, os; print(os.path.join(os.path.dirname(importlib.util.find_spec("torchaudio").origin), "lib"))')
    rm -f "$audio_lib"/*.so
    "$python" -c 'import torchaudio' || { echo "torchaudio does not import as pure Python" >&2; exit 1; }
fi
"$python" -c 'import torchvision.transforms' && echo "ComfyUI at $comfy_dir is ready (torch $torch_version)"
