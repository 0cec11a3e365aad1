"""`segpilot export` on a small adapter folder written here (numpy + safetensors, no model):
GGUF tensor names, types, the per-head row order of q/k, alpha, and the one-line refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from segpilot.cli import main as segpilot_main

pytest.importorskip("gguf", reason="the training extra is not installed")
pytest.importorskip("safetensors", reason="the training extra is not installed")

HEADS, KV_HEADS, HEAD_DIM, RANK = 4, 2, 8, 4
HIDDEN = HEADS * HEAD_DIM


def adapter_folder(path: Path, *, kind: str = "gguf", model_type: str = "llama") -> dict:
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    weights = {}
    outs = {"q_proj": HIDDEN, "k_proj": KV_HEADS * HEAD_DIM, "v_proj": KV_HEADS * HEAD_DIM}
    for layer in range(2):
        for name, out in outs.items():
            key = f"base_model.model.model.layers.{layer}.self_attn.{name}"
            weights[f"{key}.lora_A.weight"] = rng.standard_normal((RANK, HIDDEN)).astype(np.float32)
            weights[f"{key}.lora_B.weight"] = rng.standard_normal((out, RANK)).astype(np.float32)
    path.mkdir()
    save_file(weights, str(path / "adapter_model.safetensors"))
    (path / "adapter_config.json").write_text(
        json.dumps({"r": RANK, "lora_alpha": 8, "target_modules": list(outs)})
    )
    base = {
        "kind": kind,
        "source": "/models/tiny.gguf",
        "hf_dir": "/cache/tiny",
        "model_type": model_type,
        "n_head": HEADS,
        "n_head_kv": KV_HEADS,
        "add_bos": False,
    }
    (path / "segpilot-training.json").write_text(json.dumps({"base": base}))
    return weights


def tensors(path: Path) -> dict:
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    fields = {f.name: f.contents() for f in reader.fields.values() if not f.name.startswith("GGUF")}
    return {"fields": fields, **{t.name: t for t in reader.tensors}}


def test_reorder_within_each_head_interleaves_the_rotary_halves() -> None:
    from segpilot.training.export import reorder_heads

    rows = np.arange(8).reshape(8, 1)
    assert reorder_heads(rows, 2).ravel().tolist() == [0, 2, 1, 3, 4, 6, 5, 7]


def test_f32_adapter_has_llama_cpp_names_alpha_and_reordered_q_k(tmp_path: Path) -> None:
    from gguf.quants import dequantize

    from segpilot.training.export import reorder_heads

    weights = adapter_folder(tmp_path / "ad")
    out = tmp_path / "ad.gguf"
    assert segpilot_main(["export", str(tmp_path / "ad"), "-o", str(out), "--type", "f32"]) == 0
    got = tensors(out)
    assert got["fields"]["general.type"] == "adapter"
    assert got["fields"]["adapter.type"] == "lora"
    assert got["fields"]["adapter.lora.alpha"] == 8.0
    assert got["fields"]["general.architecture"] == "llama"
    names = sorted(k for k in got if k.startswith("blk."))
    assert len(names) == 2 * 3 * 2 and "blk.1.attn_v.weight.lora_b" in names

    def value(name: str) -> np.ndarray:
        t = got[name]
        return dequantize(t.data, t.tensor_type).reshape(t.data.shape)

    hf = "base_model.model.model.layers.1.self_attn"
    assert np.array_equal(
        value("blk.1.attn_q.weight.lora_a"), weights[f"{hf}.q_proj.lora_A.weight"]
    )
    q_b = weights[f"{hf}.q_proj.lora_B.weight"]
    assert np.array_equal(value("blk.1.attn_q.weight.lora_b"), reorder_heads(q_b, HEADS))
    k_b = weights[f"{hf}.k_proj.lora_B.weight"]
    assert np.array_equal(value("blk.1.attn_k.weight.lora_b"), reorder_heads(k_b, KV_HEADS))
    v_b = weights[f"{hf}.v_proj.lora_B.weight"]
    assert np.array_equal(value("blk.1.attn_v.weight.lora_b"), v_b)


def test_q8_0_adapter_keeps_short_rows_in_f32_and_is_never_f16(tmp_path: Path, capsys) -> None:
    from gguf import GGMLQuantizationType

    from segpilot.model.gguf import check_adapter_file

    adapter_folder(tmp_path / "ad")
    out = tmp_path / "ad.gguf"
    assert segpilot_main(["export", str(tmp_path / "ad"), "-o", str(out), "--type", "q8_0"]) == 0
    got = tensors(out)
    assert got["blk.0.attn_q.weight.lora_a"].tensor_type == GGMLQuantizationType.Q8_0
    assert got["blk.0.attn_q.weight.lora_b"].tensor_type == GGMLQuantizationType.F32
    check_adapter_file(out, model_architecture="llama", allow_half=False)
    assert segpilot_main(["export", str(tmp_path / "ad"), "-o", str(out), "--type", "f16"]) == 1
    assert "f16 adapters decode about 4.5x slower" in capsys.readouterr().err


def test_refusals_are_one_line(tmp_path: Path, capsys) -> None:
    adapter_folder(tmp_path / "hf", kind="hf")
    assert (
        segpilot_main(["export", str(tmp_path / "hf"), "-o", str(tmp_path / "m.gguf"), "--merge"])
        == 1
    )
    assert "--merge needs a GGUF base" in capsys.readouterr().err
    assert segpilot_main(["export", str(tmp_path / "none"), "-o", str(tmp_path / "x.gguf")]) == 1
    assert "no such adapter folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert segpilot_main(["export", str(tmp_path / "empty"), "-o", str(tmp_path / "x.gguf")]) == 1
    assert "not an adapter folder written by segpilot train" in capsys.readouterr().err
    adapter_folder(tmp_path / "half")
    (tmp_path / "half" / "adapter_model.safetensors").unlink()
    assert segpilot_main(["export", str(tmp_path / "half"), "-o", str(tmp_path / "x.gguf")]) == 1
    err = capsys.readouterr().err
    assert "the adapter is not finished" in err and len(err.strip().splitlines()) == 1
    adapter_folder(tmp_path / "gemma", model_type="gemma3")
    assert segpilot_main(["export", str(tmp_path / "gemma"), "-o", str(tmp_path / "x.gguf")]) == 1
    assert "not 'gemma3'" in capsys.readouterr().err
    assert not (tmp_path / "x.gguf").exists()
