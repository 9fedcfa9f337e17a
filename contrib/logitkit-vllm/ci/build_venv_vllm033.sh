#!/usr/bin/env bash
# Builds the vLLM 0.33.0 test venv: vLLM's own InputBatch, Sampler, BatchUpdateBuilder and Model Runner V2
# LogitsContext beside logitkit, on CPU. The PyPI wheel is CUDA-only and pins torch 2.14, so it goes in with
# --no-deps, beside the CPU torch 2.13.0 and transformers 5.20.2, plus the small pure-Python packages its
# imports need (read off the import errors). vLLM's sdist is fetched too, for its fake-batch generator
# (tests/v1/logits_processors/); it is unpacked into the venv, never copied into this repository.
# Usage: build_venv_vllm033.sh VENV_DIR. A venv built with the same pins is reused (pip's cache is reused too).
set -euo pipefail
VENV="${1:?usage: build_venv_vllm033.sh VENV_DIR}"
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../../.." && pwd)"
# What `import vllm` and the classes the tests use need, besides torch and transformers.
IMPORT_DEPS=(
    msgspec cbor2 pyzmq cloudpickle openai "fastapi<0.137" starlette uvicorn uvloop httpx anthropic
    oss-harmony "xgrammar==0.2.8" psutil py-cpuinfo blake3 cachetools pybase64 ijson setproctitle einops
    pyyaml python-json-logger prometheus_client partial-json-parser jsonschema pillow orjson aiohttp
    tiktoken regex sentencepiece requests tqdm protobuf "lark==1.2.2" watchfiles
)
PINS="torch==2.13.0 vllm==0.33.0(--no-deps) transformers==5.20.2 ${IMPORT_DEPS[*]} pytest>=8 hypothesis>=6.90 sdist-tests"
# shellcheck source=venv_common.sh
source "$HERE/venv_common.sh"
reuse_or_reset
# shellcheck disable=SC1091
source "$VENV/bin/activate"
CONSTRAINTS="$VENV/constraints.txt"
printf 'torch==2.13.0\ntransformers==5.20.2\n' > "$CONSTRAINTS"
python -m pip install --quiet torch==2.13.0
python -m pip install --quiet --no-deps vllm==0.33.0
python -m pip install --quiet -c "$CONSTRAINTS" transformers==5.20.2 "${IMPORT_DEPS[@]}"
python -m pip install --quiet -c "$CONSTRAINTS" -e "$REPO" "pytest>=8" "hypothesis>=6.90"
link_checkout

# The sdist's tests. pip prepares the sdist's metadata before it saves the file: with the "empty" target
# device and the version pinned that needs only these two build helpers, not vLLM's CUDA build requirements.
python -m pip install --quiet setuptools-rust setuptools-scm
DOWNLOAD="$(mktemp -d)"
VLLM_TARGET_DEVICE=empty VLLM_VERSION_OVERRIDE=0.33.0 python -m pip download --quiet --no-deps \
    --no-binary :all: --no-build-isolation vllm==0.33.0 -d "$DOWNLOAD"
mkdir -p "$VENV/vllm-sdist"
tar xzf "$DOWNLOAD/vllm-0.33.0.tar.gz" -C "$VENV/vllm-sdist" --strip-components=1 vllm-0.33.0/tests
rm -rf "$DOWNLOAD"

VLLM_TARGET_DEVICE=cpu python -c "
import vllm.utils.torch_utils as t; t.PIN_MEMORY = False
from vllm.v1.worker.gpu_input_batch import InputBatch
from vllm.v1.sample.sampler import Sampler
from vllm.v1.worker.gpu.sample.logits_processor import LogitsContext
import vllm, transformers, torch, logitkit_vllm
print('vllm', vllm.__version__, 'transformers', transformers.__version__, 'torch', torch.__version__)"
echo "$PINS" > "$STAMP"
