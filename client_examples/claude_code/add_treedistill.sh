#!/bin/sh
# Register treedistill with Claude Code, once per machine (--scope user) or per project (--scope project).
# It passes this shell's endpoint settings to the server; run `treedistill doctor` first to check them.
#
#   export OPENAI_BASE_URL=https://api.deepseek.com/v1 OPENAI_API_KEY=sk-... TREEDISTILL_MODEL=deepseek-chat
#   sh add_treedistill.sh            # stdio: Claude Code starts `treedistill serve` itself
#   sh add_treedistill.sh http       # HTTP: connect to a running `treedistill serve --http` with its token
set -eu

if [ "${1:-stdio}" = "http" ]; then
    : "${TREEDISTILL_TOKEN:?set TREEDISTILL_TOKEN to the token the HTTP server was started with}"
    claude mcp add --scope user --transport http treedistill-http "${TREEDISTILL_URL:-http://127.0.0.1:8765/mcp}" \
        --header "Authorization: Bearer $TREEDISTILL_TOKEN"
else
    : "${OPENAI_API_KEY:?set OPENAI_API_KEY to the key of your OpenAI-compatible endpoint}"
    : "${TREEDISTILL_MODEL:?set TREEDISTILL_MODEL to the model name, e.g. gpt-4o-mini or deepseek-chat}"
    claude mcp add treedistill --scope user \
        -e OPENAI_API_KEY="$OPENAI_API_KEY" \
        -e OPENAI_BASE_URL="${OPENAI_BASE_URL:-https://api.openai.com/v1}" \
        -e TREEDISTILL_MODEL="$TREEDISTILL_MODEL" \
        -- treedistill serve
fi
