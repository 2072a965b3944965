#!/usr/bin/env bash
# Prepare a ComfyUI checkout for the `comfyui` tests and the headless main job, on CPU-only torch.
# Usage: .ci/setup_comfyui.sh COMFYUI_DIR [PYTHON]
# Installs ComfyUI's requirements without letting pip replace torch, adds `requests` (imported by
# the server but not listed), and makes a CUDA-only torchvision wheel importable on CPU by turning
# its two fake-op registrations into no-ops when its C extension is missing.
set -euo pipefail
comfy_dir=${1:?usage: setup_comfyui.sh COMFYUI_DIR [PYTHON]}
python=${2:-python}
torch_version=$("$python" -c 'import torch; print(torch.__version__.split("+")[0])')
constraints=$(mktemp)
echo "torch==${torch_version}" > "$constraints"
grep -vE '^(torch|torchvision|torchaudio)([<>=~ ].*)?$' "$comfy_dir/requirements.txt" > "$constraints.req"
"$python" -m pip install -q -c "$constraints" -r "$constraints.req" requests
"$python" -m pip install -q --no-deps "torchvision==0.28.0"
meta=$("$python" -c 'import importlib.util, os; print(os.path.join(os.path.dirname(importlib.util.find_spec("torchvision").origin), "_meta_registrations.py"))')
sed -i -E 's/^@torch\.library\.register_fake\("torchvision::(nms|qnms)"\)/@(torch.library.register_fake("torchvision::\1") if torchvision.extension._has_ops() else (lambda f: f))/' "$meta"
"$python" -c 'import torchvision.transforms' && echo "ComfyUI at $comfy_dir is ready (torch $torch_version)"
