"""The stand-in's OpenAI `/v1/embeddings`: deterministic vectors in which paraphrases are close.

A text's vector is the normalised sum of one fixed random vector per *concept* of its content words: function
words are dropped and each word of a synonym group (`SYNONYMS`) stands for the group, so "Why does a car need
oil?" and "What makes an automobile require lubricant?" get the same vector although they share no word, while
questions about other things are nearly orthogonal. Like the real API: `input` is a string or a list of non-empty
strings (else 400), the reply lists `{"object": "embedding", "index", "embedding"}` in input order with
`usage.prompt_tokens` (characters / 4), and the stand-in's faults (`fail_next`, `rate_429`, `latency`, ...) apply.
Each request is logged with task "embed", `inputs` (how many texts) and `first_input`. Model flags
(`embed+flag`): `dimN` gives N dimensions (default 64), `nan` puts a NaN in the first vector, `ragged` makes the last vector one shorter,
`short` returns one vector fewer than asked.

`paraphrase(text)` rewrites the stand-in's own questions with synonyms: the `paraphrase` flag of a chat model puts
one such rewording of an existing question in each questions reply (tests/standin_llm.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import random
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

DEFAULT_DIM = 64
NUMBER_WEIGHT = 3.0  # "Question 1: ..." and "Question 2: ..." are different questions
SYNONYMS = [
    {"car", "cars", "automobile", "automobiles", "vehicle", "vehicles"},
    {"need", "needs", "require", "requires"},
    {"oil", "lubricant"},
    {"fast", "quick", "rapid", "speedy"},
    {"work", "works", "function", "functions", "operate", "operates"},
    {"question", "query"},
    {"context", "setting"},
    {"big", "large", "huge"},
    {"start", "begin", "commence"},
    {"buy", "purchase"},
    {"house", "home", "dwelling"},
    {"doctor", "physician"},
]
STOPWORDS = set("""a an the of in on at to for from by with about does do did is are was were be what why how which
who when where makes make way can could should would will it its this that these those and or""".split())
_CONCEPT = {word: min(group) for group in SYNONYMS for word in group}
_WORD = re.compile(r"[^\W_]+")
_SWAPS = (("Question", "Query"), ("how does", "in what way does"), ("work", "function"), ("context", "setting"),
          ("car", "automobile"), ("need", "require"), ("oil", "lubricant"))
_basis: dict[tuple[str, int], list[float]] = {}


def concepts(text: str) -> list[str]:
    """The concepts a text mentions: content words, each synonym standing for its group."""
    return [_CONCEPT.get(word, word) for word in _WORD.findall(text.lower()) if word not in STOPWORDS]


def embed_text(text: str, dim: int = DEFAULT_DIM) -> list[float]:
    """The unit vector of a text (see the module docstring)."""
    total = [0.0] * dim
    for concept in sorted(set(concepts(text))) or [text.lower()]:
        if (concept, dim) not in _basis:
            rng = random.Random(hashlib.sha256(concept.encode()).digest())
            _basis[concept, dim] = [rng.gauss(0, 1) for _ in range(dim)]
        weight = NUMBER_WEIGHT if concept.isdigit() else 1.0
        total = [a + weight * b for a, b in zip(total, _basis[concept, dim])]
    norm = math.sqrt(sum(x * x for x in total)) or 1.0
    return [x / norm for x in total]


def paraphrase(text: str) -> str:
    """The text reworded with synonyms (same concepts, mostly other words)."""
    for old, new in _SWAPS:
        text = re.sub(rf"\b{old}\b", new, text)
    return text


def _error(status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": None}},
                        status_code=status)


async def _embeddings(request: Request) -> Response:
    state = request.app.state.standin
    body = await request.json()
    model = str(body.get("model", ""))
    flags = set(model.split("+")[1:])
    texts = body.get("input")
    texts = [texts] if isinstance(texts, str) else texts
    invalid = not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t for t in texts)
    key = request.headers.get("authorization", "").removeprefix("Bearer ")
    digest = hashlib.sha256(json.dumps(texts, ensure_ascii=False).encode()).hexdigest()
    entry = {"api": "openai", "api_key": key, "model": model, "task": "embed", "task_key": digest,
             "prompt_key": digest, "inputs": len(texts) if isinstance(texts, list) else 0,
             "first_input": texts[0][:200] if isinstance(texts, list) and texts else None}
    admission = state.admit(entry, invalid=invalid)
    try:
        if admission.delay:
            await asyncio.sleep(admission.delay)
        if invalid:
            return _error(400, "'input' must be a non-empty string or a list of non-empty strings")
        if admission.status == 429:
            return JSONResponse({"error": {"message": "Rate limit reached", "type": "requests",
                                           "code": "rate_limit_exceeded"}}, status_code=429,
                                headers={"retry-after": str(admission.retry_after)})
        if admission.status != 200:
            return _error(admission.status, f"injected HTTP {admission.status}", "server_error")
        dim = next((int(flag[3:]) for flag in flags if flag.startswith("dim") and flag[3:].isdigit()), DEFAULT_DIM)
        vectors = [embed_text(text, dim) for text in texts]
        if "nan" in flags:
            vectors[0][0] = float("nan")
        if "ragged" in flags:
            vectors[-1] = vectors[-1][:-1]
        if "short" in flags:
            vectors = vectors[:-1]
        tokens = sum(len(text) // 4 + 1 for text in texts)
        state.record_outcome(entry, "ok", (tokens, 0))
        # json.dumps writes NaN as the bare token NaN, as a careless server would
        content = json.dumps({
            "object": "list", "model": model,
            "data": [{"object": "embedding", "index": n, "embedding": vector} for n, vector in enumerate(vectors)],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        })
        return Response(content, media_type="application/json")
    finally:
        state.leave()


def embedding_routes() -> list[Route]:
    """The `/v1/embeddings` route, for `standin_llm.build_app`."""
    return [Route("/v1/embeddings", _embeddings, methods=["POST"])]
