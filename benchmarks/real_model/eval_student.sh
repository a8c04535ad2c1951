#!/usr/bin/env bash
# A real small student served by llama.cpp's server, evaluated by treedistill on a few held-out questions, with
# the loopback stand-in as teacher and judge (issue 24). From the repository root:
#
#     MODEL_FILE=/path/to/qwen2.5-coder-0.5b.gguf bash benchmarks/real_model/eval_student.sh
#
# MODEL_FILE defaults to the file run.sh assembles for MODEL=qwen2.5-coder-0.5b (run it once first); $LLAMA_VENV
# must have llama-cpp-python's server (run.sh installs it). The server listens on 127.0.0.1:$PORT and is named
# to treedistill through TREEDISTILL_ENDPOINTS as a keyless endpoint. EVAL_ARGS go to eval_student.py
# (--questions, --hold-out, --max-tokens, --leaves ...). Not part of the test suite.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
LLAMA_VENV="${LLAMA_VENV:-$HOME/.cache/treedistill/venv-llama}"
PYTHON="${PYTHON:-python3}"
PORT="${PORT:-18140}"
N_CTX="${N_CTX:-2048}"
MODEL_ALIAS="${MODEL_ALIAS:-qwen2.5-coder-0.5b}"
MODEL_FILE="${MODEL_FILE:-$LLAMA_VENV/treedistill-models/$MODEL_ALIAS.gguf}"
WORK="$(mktemp -d)"
# shellcheck source=benchmarks/llama_server.sh
. "$ROOT/benchmarks/llama_server.sh"

if [[ "$(head -c 4 "$MODEL_FILE" 2>/dev/null)" != "GGUF" ]]; then
    echo "$MODEL_FILE is not a GGUF file: run MODEL=$MODEL_ALIAS bash benchmarks/real_model/run.sh once, or set MODEL_FILE" >&2
    exit 1
fi
start_llama_server "$WORK/server.log" --model "$MODEL_FILE" --model_alias "$MODEL_ALIAS" --n_ctx "$N_CTX" \
    --interrupt_requests False
# shellcheck disable=SC2086
"$PYTHON" "$ROOT/benchmarks/real_model/eval_student.py" --student-url "http://127.0.0.1:$PORT/v1" \
    --student-model "$MODEL_ALIAS" ${EVAL_ARGS:-}
echo "server log kept in $WORK" >&2
