"""OpenAI-compatible `/v1/embeddings` (OpenAI, vLLM, Ollama, llama.cpp's server with --embedding, infinity)."""

from __future__ import annotations

import base64
from typing import Any

import httpx2
import openai

from treedistill.server.errors import BadEmbeddings, TransientProviderError
from treedistill.server.models import ModelSpec
from treedistill.server.providers.base import (EmbeddingResult, RateLimitInfo, endpoint_label, openai_rate_limits,
                                               translate_sdk_error)
from treedistill.server.providers.transport import http_client


class OpenAIEmbeddingProvider:
    """One POST per batch of texts; the reply is checked (count, dimension, finite, non-zero) and normalised."""

    def __init__(self, spec: ModelSpec, *, api_key: str, base_url: str, key_env: str) -> None:
        self._spec = spec
        self._key_env = key_env
        self.endpoint = endpoint_label(spec, base_url)
        self._client = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, timeout=spec.timeout, max_retries=0,
            http_client=http_client(openai, spec.timeout))

    async def embed(self, texts: list[str]) -> EmbeddingResult:
        body = {"model": self._spec.model, "input": texts, "encoding_format": "float", **(self._spec.extra_body or {})}
        try:
            response = await self._client.post("/embeddings", cast_to=httpx2.Response, body=body)
            payload = response.json()
        except openai.APIError as exc:
            raise translate_sdk_error(exc, openai, endpoint=self.endpoint, key_env=self._key_env,
                                      secret=self._client.api_key, timeout=self._spec.timeout,
                                      read_limits=openai_rate_limits) from exc
        except ValueError as exc:
            raise TransientProviderError(f"{self.endpoint} sent an unreadable embeddings response") from exc
        return self._result(payload, len(texts), openai_rate_limits(response.headers))

    def _result(self, payload: Any, expected: int, limits: RateLimitInfo | None) -> EmbeddingResult:
        import numpy as np

        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, list):
            raise BadEmbeddings(f"{self.endpoint} answered without a 'data' list of embeddings")
        if len(data) != expected:
            raise BadEmbeddings(f"{self.endpoint} returned {len(data)} embeddings for {expected} texts; "
                                "nothing was stored")
        ordered = sorted(data, key=lambda entry: entry.get("index", 0) if isinstance(entry, dict) else 0)
        vectors = [entry.get("embedding") if isinstance(entry, dict) else None for entry in ordered]
        if any(not isinstance(vector, list) or not vector for vector in vectors):
            raise BadEmbeddings(f"{self.endpoint} returned an embedding that is not a list of numbers")
        dims = sorted({len(vector) for vector in vectors})
        if len(dims) > 1:
            raise BadEmbeddings(f"{self.endpoint} returned embeddings of varying dimension "
                                f"({', '.join(map(str, dims))}) in one reply; nothing was stored")
        try:
            matrix = np.asarray(vectors, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise BadEmbeddings(f"{self.endpoint} returned an embedding with a value that is not a number") from exc
        if not np.isfinite(matrix).all():
            raise BadEmbeddings(f"{self.endpoint} returned NaN or infinite values in an embedding; nothing was stored")
        norms = np.linalg.norm(matrix, axis=1)
        if not (norms > 0).all():
            raise BadEmbeddings(f"{self.endpoint} returned an all-zero embedding; nothing was stored")
        unit = (matrix / norms[:, None]).astype(np.float32)
        usage = payload.get("usage") if isinstance(payload.get("usage"), dict) else {}
        tokens = usage.get("prompt_tokens", usage.get("total_tokens", 0))
        return EmbeddingResult(vectors=base64.b64encode(unit.tobytes()).decode(), count=expected, dim=dims[0],
                               input_tokens=tokens if isinstance(tokens, int) else 0,
                               model=str(payload.get("model") or self._spec.model), rate_limits=limits)

    async def aclose(self) -> None:
        await self._client.close()
