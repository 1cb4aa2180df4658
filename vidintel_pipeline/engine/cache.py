"""Result cache: a plugin's output keyed by the content it saw and everything that shapes the result.

The key is a hash of the media content (file SHA-256), the plugin's name, version and options, the run
config, and the time range. An unchanged partition re-materializes from cache at $0 without calling the
plugin; changing a plugin's version or options changes only that plugin's keys. Entries live under the
video's own ``metadata/cache/`` prefix, so a cache hit can never cross a tenant boundary.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Optional

from vidintel_pipeline.storage.layout import VideoRef
from vidintel_pipeline.storage.stores import Store


def file_sha256(path: str, chunk: int = 4 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def cache_key(*, content_sha256: str, plugin: Any, config: Any = None, span: tuple[float, float] | None = None) -> str:
    info = plugin.info
    payload = {
        "content": content_sha256,
        "plugin": info.plugin_name,
        "version": info.plugin_version,
        "options": plugin.options.model_dump(mode="json"),
        "config": config.model_dump(mode="json") if hasattr(config, "model_dump") else config,
        "span": [round(span[0], 3), round(span[1], 3)] if span else None,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


class ResultCache:
    def __init__(self, store: Store, ref: VideoRef, enabled: bool = True):
        self.store = store
        self.ref = ref
        self.enabled = enabled

    def _key(self, plugin_name: str, key: str) -> str:
        return self.ref.key("metadata", f"cache/{plugin_name}-{key}.json")

    def get(self, plugin_name: str, key: str) -> Optional[Any]:
        if not self.enabled:
            return None
        k = self._key(plugin_name, key)
        return self.store.get_json(k) if self.store.exists(k) else None

    def put(self, plugin_name: str, key: str, value: Any) -> None:
        if self.enabled:
            self.store.put_json(self._key(plugin_name, key), value)
