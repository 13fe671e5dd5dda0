"""A per-process cache keyed by a config's content (its JSON), for work that several stages and the
pre-flight check share (loading the data). Keyed by content, not identity: a config rebuilt from the
same file hits; holding the object itself means the cached code never needs the config classes."""

from __future__ import annotations

import functools


def by_content(maxsize: int):
    def decorate(f):
        cache: dict = {}

        @functools.wraps(f)
        def cached(config):
            key = config.model_dump_json()
            if key not in cache:
                if len(cache) >= maxsize:
                    cache.pop(next(iter(cache)))  # the oldest
                cache[key] = f(config)
            return cache[key]

        cached.cache_clear = cache.clear
        return cached

    return decorate
