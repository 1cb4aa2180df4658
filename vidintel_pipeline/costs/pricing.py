"""Provider billing rules, kept as data in ``pricebook.json`` with their source and date.

A plugin's :meth:`estimate_cost` looks its class up here and applies the provider's rules: per-second or
per-started-minute rounding, a minimum per request, and per-feature (or per-model) prices. A rule names the
plugin class it was written for (``plugin_class``); a user plugin that merely reuses a name such as
``aws_rekognition`` is billed from its own declared ``cost_per_minute``, never at another provider's price. Because the
minimum and the rounding apply *per request*, a video cut into chunks is billed per chunk; the
orchestrator therefore costs each chunk separately. Plugins without an entry are billed linearly from
their declared ``cost_per_minute`` (per second, no minimum).
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Iterable, Optional


@dataclass(frozen=True)
class BillingRule:
    usd_per_minute: float = 0.0
    granularity_s: float = 1.0
    minimum_s: float = 0.0
    features: dict[str, float] = field(default_factory=dict)
    default_features: tuple[str, ...] = ()
    models: dict[str, float] = field(default_factory=dict)
    default_model: Optional[str] = None
    source: str = ""
    verified: bool = False
    plugin_class: str = ""  # "module.Class" the rule was written for (it and its subclasses)

    def billed_seconds(self, duration_s: float) -> float:
        if duration_s <= 0:
            return 0.0
        billed = max(duration_s, self.minimum_s)
        g = self.granularity_s
        return math.ceil(billed / g - 1e-9) * g if g > 0 else billed

    def rate(self, features: Optional[Iterable[str]] = None, model: Optional[str] = None) -> float:
        """USD per billed minute for the chosen features or model."""
        if self.features:
            chosen = list(features) if features is not None else list(self.default_features or self.features)
            unknown = [f for f in chosen if f not in self.features]
            if unknown:
                raise ValueError(f"no price for features {unknown}; priced: {sorted(self.features)}")
            return sum(self.features[f] for f in chosen)
        if self.models:
            m = model or self.default_model
            if m not in self.models:
                raise ValueError(f"no price for model {m!r}; priced: {sorted(self.models)}")
            return self.models[m]
        return self.usd_per_minute

    def cost(self, duration_s: float, features: Optional[Iterable[str]] = None, model: Optional[str] = None) -> float:
        return round(self.billed_seconds(duration_s) / 60.0 * self.rate(features, model), 6)


@functools.lru_cache(maxsize=1)
def price_book() -> dict[str, BillingRule]:
    raw = json.loads((resources.files("vidintel_pipeline.costs") / "pricebook.json").read_text())
    rules = {}
    for name, r in raw["rules"].items():
        r = dict(r)
        r["default_features"] = tuple(r.get("default_features", ()))
        rules[name] = BillingRule(**r)
    return rules


def rule_for(plugin: Any) -> Optional[BillingRule]:
    """The price-book rule written for this plugin's class (an instance or the class) or one of its bases, so a
    subclass that tweaks options keeps the provider's billing; None for every other class, whatever its name."""
    if isinstance(plugin, str):
        # A name would match any user class that borrows it (issue 17): refuse rather than price at $0.
        raise TypeError(f"rule_for() takes a plugin class or instance, not the name {plugin!r}")
    cls = plugin if isinstance(plugin, type) else type(plugin)
    lineage = {f"{c.__module__}.{c.__qualname__}" for c in cls.__mro__}
    for rule in price_book().values():
        if rule.plugin_class in lineage:
            return rule
    return None


def linear_cost(duration_s: float, usd_per_minute: float) -> float:
    return round(max(0.0, duration_s) * usd_per_minute / 60.0, 6)


def chunked_cost(plugin: Any, durations: Iterable[float]) -> float:
    """Total for one request per chunk (minimums and rounding apply to each)."""
    return round(sum(plugin.estimate_cost(d) for d in durations), 6)


def chunk_durations(duration_s: float, max_chunk_s: Optional[float]) -> list[float]:
    """Durations of the requests a plugin will see for a video, before keyframe alignment."""
    if not max_chunk_s or duration_s <= max_chunk_s:
        return [duration_s]
    n = int(duration_s // max_chunk_s)
    rest = duration_s - n * max_chunk_s
    return [max_chunk_s] * n + ([rest] if rest > 1e-6 else [])
