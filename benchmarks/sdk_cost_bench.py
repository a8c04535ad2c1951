"""CPU per call of the client side of a chat completion: the SDK's ways against treedistill's provider.

    python benchmarks/sdk_cost_bench.py              # 1,000 calls per way, 16 at a time
    python benchmarks/sdk_cost_bench.py --calls 100  # a quick run (tests/test_benchmarks.py)

The stand-in runs in its own process with no latency, so this process's CPU time is the client's cost. Each way
makes the same calls (the same prompt, answered in 24-character streamed pieces when streamed) and prints its
CPU ms per call and the ratio to plain httpx2 (no SDK at all):
- httpx2 post, JSON reply: the floor;
- aiohttp post, JSON reply: Curator's way (no SDK);
- SDK `chat.completions.create`, not streamed, on its default transport (httpx2's httpcore) and on its aiohttp
  transport, which treedistill's providers use (`providers/transport.py`);
- SDK `chat.completions.create(stream=True)`, iterating its chunk objects (treedistill before issue 19);
- treedistill's OpenAIChatProvider.complete: streamed, the body posted through the SDK client's `post`, the
  events read as plain JSON (providers/sse.py); then unstreamed, as it calls an endpoint whose calls are short
  (providers/stream_choice.py: here after the warm-up; for the streamed row, PROBE_CALLS is raised past the calls);
- the same for Anthropic: SDK `messages.stream` against AnthropicMessagesProvider.complete, both ways.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.auto_distill_bench import standin_process  # noqa: E402
from treedistill.server.models import ModelSpec  # noqa: E402
from treedistill.server.providers import ChatMessage, ChatRequest, build_provider, stream_choice  # noqa: E402

QUESTION = "Why do leaves change colour in autumn? Explain the pigments involved and the role of temperature."


async def timed(calls: int, concurrency: int, one: Callable[[int], Awaitable[object]]) -> float:
    """CPU milliseconds per call of `calls` calls of `one`, `concurrency` at a time (after a warm-up call)."""
    await one(-1)
    pool = asyncio.Semaphore(concurrency)

    async def bounded(number: int) -> None:
        async with pool:
            await one(number)
    cpu = time.process_time()
    await asyncio.gather(*(bounded(number) for number in range(calls)))
    return (time.process_time() - cpu) * 1000 / calls


async def measure(url: str, calls: int, concurrency: int) -> list[tuple[str, float]]:
    import aiohttp
    import anthropic
    import httpx2
    import openai

    messages = [{"role": "user", "content": QUESTION}]
    results: list[tuple[str, float]] = []
    async with httpx2.AsyncClient(base_url=f"{url}/v1", headers={"authorization": "Bearer sk-bench"}) as http:
        async def plain(number: int) -> object:
            response = await http.post("/chat/completions", json={"model": "standin", "messages": messages})
            return response.json()
        results.append(("httpx2 post, JSON reply (no SDK)", await timed(calls, concurrency, plain)))
    async with aiohttp.ClientSession(headers={"authorization": "Bearer sk-bench"}) as session:
        async def curators_way(number: int) -> object:
            async with session.post(f"{url}/v1/chat/completions",
                                    json={"model": "standin", "messages": messages}) as response:
                return await response.json()
        results.append(("aiohttp post, JSON reply (no SDK: Curator's way)",
                        await timed(calls, concurrency, curators_way)))

    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="sk-bench", max_retries=0)
    on_aiohttp = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="sk-bench", max_retries=0,
                                    http_client=openai.DefaultAioHttpClient())

    async def unstreamed(number: int) -> object:
        return await client.chat.completions.create(model="standin", messages=messages)

    async def unstreamed_on_aiohttp(number: int) -> object:
        return await on_aiohttp.chat.completions.create(model="standin", messages=messages)

    async def sdk_streamed(number: int) -> object:
        stream = await client.chat.completions.create(model="standin", messages=messages, stream=True,
                                                      stream_options={"include_usage": True})
        return [chunk async for chunk in stream]
    results.append(("SDK chat.completions.create, not streamed", await timed(calls, concurrency, unstreamed)))
    results.append(("the same on the SDK's aiohttp transport (treedistill's)",
                    await timed(calls, concurrency, unstreamed_on_aiohttp)))
    await on_aiohttp.close()
    results.append(("SDK chat.completions.create(stream=True), chunk objects",
                    await timed(calls, concurrency, sdk_streamed)))
    await client.close()

    request = ChatRequest(messages=[ChatMessage(role="user", content=QUESTION)])
    environ = {"OPENAI_API_KEY": "sk-bench", "OPENAI_BASE_URL": f"{url}/v1",
               "ANTHROPIC_API_KEY": "sk-bench", "ANTHROPIC_BASE_URL": url}
    openai_spec = ModelSpec(provider="openai", model="standin", base_url=f"{url}/v1")
    results += await provider_ways("OpenAIChatProvider", openai_spec, environ, request, calls, concurrency)

    sdk = anthropic.AsyncAnthropic(base_url=url, api_key="sk-bench", max_retries=0)

    async def anthropic_streamed(number: int) -> object:
        async with sdk.messages.stream(model="standin", max_tokens=1024, messages=messages) as stream:
            return await stream.get_final_message()
    results.append(("SDK messages.stream, final message", await timed(calls, concurrency, anthropic_streamed)))
    await sdk.close()
    anthropic_spec = ModelSpec(provider="anthropic", model="standin", base_url=url)
    results += await provider_ways("AnthropicMessagesProvider", anthropic_spec, environ, request, calls, concurrency)
    return results


async def provider_ways(name: str, spec: ModelSpec, environ: dict[str, str], request: ChatRequest, calls: int,
                        concurrency: int) -> list[tuple[str, float]]:
    """treedistill's provider of `spec`, streamed (PROBE_CALLS raised past the calls), then unstreamed (once
    PROBE_CALLS short calls have shown the endpoint's calls are short)."""
    results = []
    for streamed in (True, False):
        probes = stream_choice.PROBE_CALLS
        if streamed:
            stream_choice.PROBE_CALLS = calls + 1 + probes
        provider = build_provider(spec, environ)
        try:
            if not streamed:
                for _ in range(probes):
                    await provider.complete(request)
            cpu = await timed(calls, concurrency, lambda number: provider.complete(request))
        finally:
            stream_choice.PROBE_CALLS = probes
            await provider.aclose()
        results.append((f"treedistill {name}.complete ({'streamed, raw events' if streamed else 'unstreamed'})", cpu))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    with standin_process(0.0, 0.0) as url:
        results = asyncio.run(measure(url, args.calls, args.concurrency))
    floor = results[0][1]
    for name, cpu in results:
        print(f"{name}: {cpu:.2f} ms CPU per call ({cpu / floor:.2f} x httpx2)")


if __name__ == "__main__":
    main()
