"""Plugin discovery and lookup.

Plugins come from three places, in this order: the repository's ``plugins/`` package, every folder named
in ``VIDINTEL_PLUGIN_PATH`` (``os.pathsep``-separated) or passed to :meth:`PluginRegistry.discover_plugins`,
and installed packages that declare an entry point in the ``vidintel.plugins`` group
(``name = "package.module:PluginClass"``). A module that fails to import, a class whose info is invalid,
or two plugins with one name are recorded as :class:`LoadError`\\ s naming the file; the rest still load.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import logging
import os
import sys
import traceback
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable, Optional

from vidintel_pipeline.plugin_api.contracts import (
    BaseDiarizationPlugin,
    BaseTemporalPlugin,
    BaseTranscriptionPlugin,
    PluginError,
    PluginInfo,
)

ENTRY_POINT_GROUP = "vidintel.plugins"
_log = logging.getLogger("vidintel.registry")
PluginClass = type  # a subclass of BaseTemporalPlugin or BaseTranscriptionPlugin


@dataclass
class LoadError:
    source: str
    error: str


@dataclass
class PluginEntry:
    cls: PluginClass
    info: PluginInfo
    source: str


@dataclass
class Accuracy:
    """A plugin's score for the features asked about, and whether it was measured here or declared by the plugin."""

    score: float
    basis: str  # measured | declared | mixed (some features measured) | none
    source: str
    declared: list[str] = field(default_factory=list)  # the features whose figure is the plugin's own claim

    def as_dict(self) -> dict[str, Any]:
        return {"score": self.score, "basis": self.basis, "source": self.source, "declared": self.declared}


_entry_points_seen: dict[tuple[str, ...], tuple[Any, ...]] = {}


def _plugin_entry_points() -> tuple[Any, ...]:
    """The installed plugin entry points, scanned once per ``sys.path``: a scan reads every installed package's
    metadata (about 17 ms here), and a registry is built several times per video (each step, the GPU routing)."""
    key = tuple(sys.path)
    if key not in _entry_points_seen:
        _entry_points_seen[key] = tuple(entry_points(group=ENTRY_POINT_GROUP))
    return _entry_points_seen[key]


@dataclass
class PluginRegistry:
    entries: dict[str, PluginEntry] = field(default_factory=dict)
    errors: list[LoadError] = field(default_factory=list)
    measured: Optional[dict[str, Any]] = field(default=None, repr=False)  # vidintel plugins benchmark's figures

    # discovery ------------------------------------------------------------------------------------------
    @classmethod
    def default(cls, extra_paths: Iterable[str] = ()) -> "PluginRegistry":
        reg = cls()
        reg.discover_package("vidintel.plugins")
        env = os.environ.get("VIDINTEL_PLUGIN_PATH", "")
        for folder in [*extra_paths, *[p for p in env.split(os.pathsep) if p]]:
            reg.discover_plugins(folder)
        reg.discover_entry_points()
        return reg

    def discover_package(self, package: str) -> None:
        try:
            pkg = importlib.import_module(package)
        except Exception as exc:
            self.errors.append(LoadError(package, f"cannot import package: {exc}"))
            return
        if pkg.__file__ is None:
            self.errors.append(LoadError(package, "a namespace package: plugins load from a package with __init__.py"))
            return
        folder = Path(pkg.__file__).parent
        for path in sorted(folder.glob("*.py")):
            if path.name.startswith("_"):
                continue
            self._load(lambda stem=path.stem: importlib.import_module(f"{package}.{stem}"), str(path))

    def discover_plugins(self, folder: str | os.PathLike[str]) -> None:
        """Load every ``*.py`` module (and package with ``__init__.py``) directly under ``folder``."""
        folder = Path(folder).expanduser().resolve()
        if not folder.is_dir():
            self.errors.append(LoadError(str(folder), "plugin folder does not exist"))
            return
        tag = hashlib.sha1(str(folder).encode()).hexdigest()[:8]
        for path in sorted(folder.iterdir()):
            if path.name.startswith(("_", ".")):
                continue
            if path.is_dir() and (path / "__init__.py").is_file():
                target = path / "__init__.py"
            elif path.suffix == ".py":
                target = path
            else:
                continue
            modname = f"vidintel_ext_{tag}_{path.stem}"
            self._load(lambda t=target, m=modname: _import_file(m, t), str(target))

    def discover_entry_points(self) -> None:
        for ep in _plugin_entry_points():
            source = f"entry point {ep.name} = {ep.value}"
            try:
                obj = ep.load()
            except Exception as exc:
                self.errors.append(LoadError(source, f"{type(exc).__name__}: {exc}"))
                continue
            if inspect.ismodule(obj):
                self._register_module(obj, source)
            else:
                self._register(obj, source)

    def _load(self, importer, source: str) -> None:
        try:
            module = importer()
        except Exception as exc:
            tb = traceback.extract_tb(exc.__traceback__)
            where = f" (line {tb[-1].lineno})" if tb else ""
            self.errors.append(LoadError(source, f"import failed{where}: {type(exc).__name__}: {exc}"))
            return
        self._register_module(module, source)

    def _register_module(self, module: ModuleType, source: str) -> None:
        for name, obj in inspect.getmembers(module, inspect.isclass):
            if obj.__module__ != module.__name__:
                continue
            if _is_plugin_class(obj):
                self._register(obj, source)
            elif _is_unfinished(obj):
                missing = ", ".join(sorted(getattr(obj, "__abstractmethods__", ())))
                self.errors.append(
                    LoadError(
                        source,
                        f"{name} is abstract: it does not define {missing} "
                        "(a class meant as a base for others: name it Base... or _...)",
                    )
                )

    def _register(self, cls: Any, source: str) -> None:
        if not _is_plugin_class(cls):
            self.errors.append(LoadError(source, f"{cls!r} is not a concrete vidintel plugin class"))
            return
        try:
            info = cls.describe()  # never runs the plugin's __init__
        except Exception as exc:
            self.errors.append(LoadError(source, f"{cls.__name__}: invalid plugin info: {exc}"))
            return
        kind = (
            "transcription"
            if issubclass(cls, BaseTranscriptionPlugin)
            else "diarization"
            if issubclass(cls, BaseDiarizationPlugin)
            else "temporal"
        )
        if info.kind != kind:
            info = info.model_copy(update={"kind": kind})
        existing = self.entries.get(info.plugin_name)
        if existing is not None:
            if existing.cls is cls:
                return
            self.errors.append(
                LoadError(
                    source,
                    f"duplicate plugin name {info.plugin_name!r}: already loaded from {existing.source}; "
                    "this one is ignored",
                )
            )
            return
        self.entries[info.plugin_name] = PluginEntry(cls=cls, info=info, source=source)

    # lookup ---------------------------------------------------------------------------------------------
    def names(self, kind: Optional[str] = None) -> list[str]:
        return sorted(n for n, e in self.entries.items() if kind is None or e.info.kind == kind)

    def get_plugin(self, name: str, **options: Any) -> Any:
        """A new instance of plugin ``name`` with ``options``; a clear :class:`PluginError` if unknown."""
        entry = self.entries.get(name)
        if entry is None:
            failed = [e for e in self.errors if name in e.source]
            hint = f"; it failed to load: {failed[0].error}" if failed else ""
            raise PluginError(f"unknown plugin {name!r}{hint}. Available: {', '.join(self.names()) or 'none'}")
        return entry.cls(**options)

    def get_by_capability(self, capability: str) -> list[Any]:
        """A new instance of every plugin offering ``capability`` (a name in its ``supported_events``), as the seed
        uses it."""
        return [self.get_plugin(i.plugin_name) for i in self.infos_by_capability(capability)]

    def infos_by_capability(self, capability: str) -> list[PluginInfo]:
        """The same plugins' info records, without instantiating them."""
        return [
            e.info
            for e in self.entries.values()
            if capability in e.info.supported_events or e.info.plugin_name == capability
        ]

    # selection ------------------------------------------------------------------------------------------
    def candidates(
        self,
        required_features: Iterable[str] = (),
        chunk_duration: Optional[float] = None,
        kind: Optional[str] = None,
    ) -> list[PluginInfo]:
        """Plugins offering every required feature and accepting chunks of ``chunk_duration`` seconds."""
        need = set(required_features)
        out = []
        for e in self.entries.values():
            i = e.info
            if kind and i.kind != kind:
                continue
            if not need <= set(i.supported_events):
                continue
            if (
                chunk_duration is not None
                and i.max_chunk_duration is not None
                and chunk_duration > i.max_chunk_duration
            ):
                continue
            out.append(i)
        return out

    def select_plugin(
        self,
        required_features: Iterable[str],
        preferred_cost: Optional[float] = None,
        chunk_duration: Optional[float] = None,
        kind: Optional[str] = None,
        **options: Any,
    ) -> Any:
        """The best plugin for a task: within ``preferred_cost`` ($/second) if any is, then most accurate, then
        cheapest."""
        features = list(required_features)
        found = self.candidates(features, chunk_duration, kind)
        if not found:
            offered = {c for e in self.entries.values() for c in e.info.supported_events}
            missing = [f for f in features if f not in offered]
            closest = sorted(
                self.entries.values(),
                key=lambda e: (-len(set(features) & set(e.info.supported_events)), e.info.plugin_name),
            )[:3]
            raise PluginError(
                f"no plugin offers {features}"
                + (f" for {chunk_duration:g} s chunks" if chunk_duration else "")
                + (f"; no installed plugin offers {missing} at all" if missing else "")
                + "; closest: "
                + ", ".join(
                    f"{e.info.plugin_name} "
                    f"({', '.join(sorted(set(features) & set(e.info.supported_events))) or 'none of them'})"
                    for e in closest
                )
            )

        def rank(i: PluginInfo) -> tuple:
            per_second = i.cost_per_minute / 60.0
            within = preferred_cost is None or per_second <= preferred_cost + 1e-12
            return (not within, -self.accuracy_of(i, features).score, per_second, i.plugin_name)

        best = min(found, key=rank)
        return self._selected(best, features, **options)

    def select_optimal_plugin(
        self,
        required_accuracy: float,
        max_cost_per_minute: float,
        required_features: Iterable[str] = (),
        kind: Optional[str] = None,
        **options: Any,
    ) -> Any:
        """The cheapest plugin whose accuracy meets ``required_accuracy`` within the price cap.

        Figures measured by ``vidintel plugins benchmark`` (on this plugin version) replace the plugin's declared
        ones; at equal cost a measured plugin wins over one that only declares. The returned instance carries
        ``selection`` (an :class:`Accuracy`) saying which figures were declared, and a declared choice is logged."""
        features = list(required_features)
        found = self.candidates(features, None, kind)
        scored = {i.plugin_name: self.accuracy_of(i, features) for i in found}
        ok = [
            i
            for i in found
            if scored[i.plugin_name].score >= required_accuracy and i.cost_per_minute <= max_cost_per_minute
        ]
        if not ok:
            seen = "; ".join(
                f"{i.plugin_name} {scored[i.plugin_name].score:.2f} ({scored[i.plugin_name].basis}) "
                f"${i.cost_per_minute:g}/min"
                for i in sorted(found, key=lambda i: i.plugin_name)
            )
            raise PluginError(
                f"no plugin reaches accuracy {required_accuracy} for {features or 'its capabilities'} "
                f"at <= ${max_cost_per_minute}/min"
                + (f"; candidates: {seen}" if seen else "; no candidate offers them")
            )
        best = min(
            ok,
            key=lambda i: (
                i.cost_per_minute,
                scored[i.plugin_name].basis != "measured",
                -scored[i.plugin_name].score,
                i.plugin_name,
            ),
        )
        return self._selected(best, features, **options)

    def _selected(self, info: PluginInfo, features: list[str], **options: Any) -> Any:
        plugin = self.get_plugin(info.plugin_name, **options)
        acc = self.accuracy_of(info, features)
        plugin.selection = acc
        if acc.declared:
            _log.info(
                "selected %s on declared (unmeasured) accuracy for %s: run vidintel plugins benchmark to measure it",
                info.plugin_name,
                ", ".join(acc.declared),
            )
        return plugin

    # accuracy -------------------------------------------------------------------------------------------
    def measured_figures(self) -> dict[str, Any]:
        """The benchmark file's figures, read once per registry."""
        if self.measured is None:
            from vidintel_pipeline.evaluation.measured import read_measured

            self.measured = read_measured()
        return self.measured

    def accuracy_of(self, info: PluginInfo, features: Iterable[str] = ()) -> Accuracy:
        """The weakest score over ``features`` (all the plugin has figures for, if none): measured on this version
        where ``vidintel plugins benchmark`` measured it, else declared by the plugin; a feature with neither
        scores 0."""
        from vidintel_pipeline.evaluation.measured import measured_scores

        entry = self.measured_figures().get(info.plugin_name)
        measured = measured_scores(entry, info.plugin_version)
        keys = list(features) or sorted(set(info.accuracy) | set(measured))
        if not keys:
            return Accuracy(0.0, "none", "")
        declared = [k for k in keys if k not in measured]
        score = min(measured[k] if k in measured else info.accuracy.get(k, 0.0) for k in keys)
        basis = "measured" if not declared else "declared" if len(declared) == len(keys) else "mixed"
        sources = []
        if len(declared) < len(keys) and entry:
            sources.append(f"measured {entry.get('measured_at', '?')} on {entry.get('truth', '?')}")
        if declared:
            sources.append(f"declared: {info.accuracy_source or 'no source given'}")
        return Accuracy(round(score, 4), basis, "; ".join(sources), declared)


class TemporalMarkerRegistry(PluginRegistry):
    """The registry under the seed's name: built-in plugins, ``VIDINTEL_PLUGIN_PATH`` folders and entry points
    loaded at construction, and the cost ledger behind :meth:`get_total_cost`."""

    def __init__(self, entries: Optional[dict[str, PluginEntry]] = None, errors: Optional[list[LoadError]] = None):
        super().__init__(entries if entries is not None else {}, errors if errors is not None else [])
        if entries is None:
            loaded = PluginRegistry.default()
            self.entries.update(loaded.entries)
            self.errors.extend(loaded.errors)

    def get_total_cost(self, video_id: Optional[str] = None, project_id: Optional[str] = None) -> float:
        """USD recorded in the cost ledger for ``video_id`` (optionally within ``project_id``; neither: everything)."""
        from vidintel.resources.costs import CostControls

        return CostControls().ledger().get_total_cost(video_id=video_id, project_id=project_id)


def _is_plugin_class(obj: Any) -> bool:
    return (
        inspect.isclass(obj)
        and issubclass(obj, (BaseTemporalPlugin, BaseTranscriptionPlugin, BaseDiarizationPlugin))
        and not inspect.isabstract(obj)
    )


def _is_unfinished(obj: Any) -> bool:
    """A plugin class left abstract by mistake: not named as a base class (``Base...``, ``_...``)."""
    return (
        inspect.isclass(obj)
        and issubclass(obj, (BaseTemporalPlugin, BaseTranscriptionPlugin, BaseDiarizationPlugin))
        and inspect.isabstract(obj)
        and not obj.__name__.startswith(("Base", "_"))
    )


def _import_file(modname: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        modname, path, submodule_search_locations=[str(path.parent)] if path.name == "__init__.py" else None
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[modname] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(modname, None)
        raise
    return module
