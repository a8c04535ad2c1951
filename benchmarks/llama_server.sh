# llama-cpp-python's server for the benchmarks that run a real model (real_model/run.sh,
# real_model/eval_student.sh, real_embeddings/run.sh): sourced after they set LLAMA_VENV and PORT. The server
# listens on 127.0.0.1:$PORT and is stopped when the script exits.

SERVER_PID=""

stop_llama_server() {
    if [[ -n "$SERVER_PID" ]]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
}
trap stop_llama_server EXIT

# start_llama_server LOG ARG...: the server with ARGs (--model and the rest), its output in LOG; returns once it
# answers /v1/models, and exits showing LOG when it stops first or has not answered within two minutes.
start_llama_server() {
    local log="$1"
    shift
    "$LLAMA_VENV/bin/python" -m llama_cpp.server --host 127.0.0.1 --port "$PORT" "$@" >"$log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 240); do
        if curl -sf "http://127.0.0.1:$PORT/v1/models" >/dev/null; then return 0; fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then cat "$log" >&2; exit 1; fi
        sleep 0.5
    done
    echo "llama.cpp's server did not answer on port $PORT within two minutes; its log: $log" >&2
    exit 1
}
