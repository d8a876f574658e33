"""One "worker process" of the shared-rate measurement: calls an OpenAI-compatible endpoint
through Taskloom's endpoint path (Redis rate limit, breaker, retries) with many calls in
flight until the time is up, then prints how many it made.

    python _providers_rate_client.py BASE_URL REDIS_URL RATE SECONDS
"""

from __future__ import annotations

import asyncio
import sys

from pydantic import SecretStr

from taskloom.agents import cost
from taskloom.agents.endpoints import parse_endpoints
from taskloom.agents.providers import GenerationParams, ProviderError
from taskloom.agents.providers.registry import LegacySettings, build_llm_endpoints

IN_FLIGHT = 32
LEGACY = LegacySettings("http://127.0.0.1:9/v1", SecretStr(""), 30, 0, 0, 0)


class NoMetrics:
    def __getattr__(self, name: str) -> object:
        return lambda *args, **kwargs: None


async def main(base_url: str, redis_url: str, rate: float, seconds: float) -> None:
    config = {
        "bench": {
            "kind": "openai",
            "base_url": base_url,
            "limits": {"requests_per_second": rate, "max_wait_s": 60},
            "breaker": {"enabled": False},
        }
    }
    llm = build_llm_endpoints(
        parse_endpoints(config),
        [],
        {},
        LEGACY,
        NoMetrics(),
        redis_url,  # type: ignore[arg-type]
    )
    provider = llm.providers["bench"]
    params = GenerationParams(temperature=0, max_tokens=16)
    messages = [{"role": "user", "content": "hi"}]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    done = 0

    async def caller() -> None:
        nonlocal done
        with cost.task_usage("bench", "bench"):
            while loop.time() < deadline:
                try:
                    async for _ in provider.stream(messages, "m", params):
                        pass
                    done += 1
                except ProviderError:
                    pass

    await asyncio.gather(*(caller() for _ in range(IN_FLIGHT)))
    await llm.aclose()
    print(done)


if __name__ == "__main__":
    url, redis_url, rate, seconds = sys.argv[1:5]
    asyncio.run(main(url, redis_url, float(rate), float(seconds)))
