"""Real LoRA fine-tuning of the default model (SmolLM2-135M) with transformers + peft, and
its export to llama.cpp: a few steps lower the loss, --resume continues exactly, the GGUF
adapter loads in llama.cpp and changes what it writes.

The de-quantised base is kept in pytest's cache folder between runs, so only the first run
pays for transformers' GGUF conversion. Training runs on one thread, so runs repeat exactly.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import FIXTURES

from segpilot.cli import main as segpilot_main

pytest.importorskip("peft", reason="the training extra is not installed")
pytestmark = pytest.mark.slow

STEPS = FIXTURES / "trajectories" / "repl_transcript_steps.jsonl"
STATE = "P Q : Prop\nhp : P\nhq : Q\n⊢ P ∧ Q"
TRAIN_FLAGS = ["--max-steps", "8", "--lr", "3e-3", "--batch-tokens", "256", "--seed", "0"]


@pytest.fixture(scope="module")
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    cache = getattr(request.config, "cache", None)
    cache = cache.mkdir("segpilot-training-base") if cache is not None else None
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEGPILOT_HOME", str(tmp_path_factory.mktemp("home")))
        mp.setenv("SEGPILOT_TRAINING_CACHE_DIR", str(cache or tmp_path_factory.mktemp("cache")))
        mp.setenv("SEGPILOT_TRAINING_THREADS", "1")
        mp.setenv("SEGPILOT_TRAINING_CHECKPOINT_EVERY", "4")
        yield mp


@pytest.fixture(scope="module")
def segments(env, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("data") / "segments.jsonl"
    argv = ["data", "segments", str(STEPS), "--rule", "change", "-o", str(out)]
    assert segpilot_main([*argv, "--group-by", "source,transcript"]) == 0
    return out


@pytest.fixture(scope="module")
def adapter(env, segments: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "adapter"
    argv = ["train", str(segments), "-o", str(out), *TRAIN_FLAGS, "--quiet"]
    assert segpilot_main([*argv, "--group-by", "source,transcript"]) == 0
    return out


def _record(adapter: Path) -> dict:
    return json.loads((adapter / "segpilot-training.json").read_text(encoding="utf-8"))


def test_train_writes_a_peft_adapter_with_card_curve_and_checkpoints(adapter: Path) -> None:
    for name in ("adapter_config.json", "adapter_model.safetensors", "README.md", "loss.png"):
        assert (adapter / name).is_file(), name
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["r"] == 8 and sorted(config["target_modules"]) == ["q_proj", "v_proj"]
    record = _record(adapter)
    assert record["metrics"]["steps"] == 8
    assert [s[0] for s in record["history"]["steps"]] == list(range(8))
    assert record["history"]["valid"], "a validation loss at the end"
    card = (adapter / "README.md").read_text()
    assert "SmolLM2-135M-Instruct.Q4_1.gguf" in card and "segment" in card
    assert sorted(p.name for p in (adapter / "checkpoints").iterdir()) == [
        "step-0000004",
        "step-0000008",
    ]


def test_a_few_steps_lower_the_loss_on_the_training_segments(env, adapter: Path) -> None:
    import torch
    from peft import PeftModel

    from segpilot.engine.settings import load_settings
    from segpilot.model.presets import get_preset
    from segpilot.training import examples as ex
    from segpilot.training.base import load_base
    from segpilot.training.trainer import validation_loss

    settings = load_settings(file={})
    model, tok, info = load_base(None, None, settings.training.cache_dir)
    rows = ex.read_rows(Path(_record(adapter)["data"]["train"]), ("source", "transcript"))
    examples, _ = ex.tokenize_rows(
        rows, get_preset("segment"), ex.Tokenizer(tok, info.add_bos), max_length=512
    )
    tuned = PeftModel.from_pretrained(model, str(adapter))
    pad = tok.pad_token_id or 0
    with torch.no_grad():
        after = validation_loss(tuned, examples, 512, pad, "cpu")
        with tuned.disable_adapter():
            before = validation_loss(tuned, examples, 512, pad, "cpu")
    assert before is not None and after is not None
    assert after < before - 0.5, (before, after)


def test_resume_continues_from_the_checkpoint_and_ends_where_the_full_run_ended(
    env, segments: Path, adapter: Path, tmp_path: Path
) -> None:
    from safetensors.numpy import load_file

    resumed = tmp_path / "adapter"
    shutil.copytree(
        adapter / "checkpoints" / "step-0000004", resumed / "checkpoints" / "step-0000004"
    )
    argv = ["train", str(segments), "-o", str(resumed), *TRAIN_FLAGS, "--quiet", "--resume"]
    assert segpilot_main([*argv, "--group-by", "source,transcript"]) == 0
    history = _record(resumed)["history"]["steps"]
    full = _record(adapter)["history"]["steps"]
    assert [s[0] for s in history] == list(range(8))
    assert history[:4] == full[:4], "the first half came from the checkpoint"
    assert [round(s[1], 4) for s in history[4:]] == [round(s[1], 4) for s in full[4:]]
    a = load_file(str(adapter / "adapter_model.safetensors"))
    b = load_file(str(resumed / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    assert all(abs(a[k] - b[k]).max() < 1e-5 for k in a)


def test_resume_without_a_checkpoint_says_so(env, segments: Path, tmp_path: Path, capsys) -> None:
    argv = ["train", str(segments), "-o", str(tmp_path / "none"), "--resume", "--quiet"]
    assert segpilot_main(argv) == 1
    assert "no checkpoint to resume from" in capsys.readouterr().err


def _suggest(adapter_gguf: Path | None, capsys) -> list[str]:
    argv = ["suggest", "--state", STATE, "-k", "3", "--seed", "7", "--max-tokens", "24", "--json"]
    argv += ["--adapter", str(adapter_gguf)] if adapter_gguf else []
    capsys.readouterr()
    assert segpilot_main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    return [json.dumps(c, sort_keys=True) for c in out["candidates"]]


@pytest.mark.parametrize("outtype", ["f32", "q8_0"])
def test_exported_gguf_adapter_loads_in_llama_cpp_and_changes_suggest(
    env, adapter: Path, tmp_path: Path, outtype: str, capsys
) -> None:
    from segpilot.model.gguf import check_adapter_file

    out = tmp_path / f"adapter-{outtype}.gguf"
    assert segpilot_main(["export", str(adapter), "-o", str(out), "--type", outtype]) == 0
    info = check_adapter_file(out, model_architecture="llama", allow_half=False)
    assert not info.half_precision_tensors()
    assert len(info.tensor_types) == 2 * 2 * 30  # q and v, A and B, 30 layers
    base = _suggest(None, capsys)
    tuned = _suggest(out, capsys)
    assert tuned != base


def test_merge_refuses_q4_and_writes_a_q8_model_that_llama_cpp_runs(
    env, adapter: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "merged.gguf"
    assert segpilot_main(["export", str(adapter), "-o", str(out), "--merge", "--type", "q4_1"]) == 1
    assert "would erase the fine-tune" in capsys.readouterr().err
    assert not out.exists()
    assert segpilot_main(["export", str(adapter), "-o", str(out), "--merge"]) == 0
    from segpilot.model.gguf import read_gguf

    types = read_gguf(out, tensors=True).tensor_types
    assert types["blk.0.attn_q.weight"] == 8 and types["blk.0.attn_k.weight"] == 3  # q8_0, q4_1
    capsys.readouterr()
    base = _suggest(None, capsys)
    argv = ["suggest", "--state", STATE, "-k", "3", "--seed", "7", "--max-tokens", "24", "--json"]
    assert segpilot_main([*argv, "--model", str(out)]) == 0
    merged = [
        json.dumps(c, sort_keys=True) for c in json.loads(capsys.readouterr().out)["candidates"]
    ]
    assert merged != base


def test_head_reorder_matches_how_the_gguf_stores_q_and_k(env, adapter: Path) -> None:
    """transformers undoes llama.cpp's per-head row order when it loads the GGUF; our export
    must redo exactly that order for lora_b of q_proj and k_proj."""
    from gguf import GGUFReader
    from gguf.quants import dequantize
    from safetensors.numpy import load_file

    from segpilot.model.locate import default_model_path
    from segpilot.training.export import reorder_heads

    base = _record(adapter)["base"]
    hf = load_file(str(Path(base["hf_dir"]) / "model.safetensors"))
    tensors = {t.name: t for t in GGUFReader(str(default_model_path())).tensors}
    for name, key, heads in (
        ("blk.3.attn_q.weight", "model.layers.3.self_attn.q_proj.weight", base["n_head"]),
        ("blk.3.attn_k.weight", "model.layers.3.self_attn.k_proj.weight", base["n_head_kv"]),
    ):
        t = tensors[name]
        gguf = dequantize(t.data, t.tensor_type).reshape(hf[key].shape)
        assert abs(reorder_heads(hf[key], heads) - gguf).max() == 0
        assert abs(hf[key] - gguf).max() > 0.1  # the order does differ


def test_training_prompts_tokenize_as_llama_cpp_tokenizes_them(env, adapter: Path) -> None:
    from transformers import AutoTokenizer

    from segpilot.model.backend import LlamaBackend
    from segpilot.model.presets import get_preset
    from segpilot.model.settings import ModelSettings
    from segpilot.training.examples import Tokenizer

    base = _record(adapter)["base"]
    ours = Tokenizer(AutoTokenizer.from_pretrained(base["hf_dir"]), base["add_bos"])
    preset = get_preset("segment")
    states = [STATE, "n : ℕ\nh : n ∣ 4 ∧ 0 < n\n⊢ n ≤ 4", "x : Nat\n⊢ <|im_end|> x = x"]
    with LlamaBackend(ModelSettings()) as backend:
        for state in states:
            prompt = preset.build_prompt(state=state, examples=[(STATE, "constructor")])
            assert ours.prompt(prompt) == backend.tokenize(prompt), state


def test_finetune_runs_the_whole_loop_on_a_traced_project(env, tmp_path: Path, capsys) -> None:
    import shlex

    from conftest import FAKES, PYTHON
    from test_training_trace import HAVE, SWAP, graph

    from segpilot.model.gguf import check_adapter_file

    project = tmp_path / "proj"
    project.mkdir()
    (project / "Swap.lean").write_text(SWAP, encoding="utf-8")
    (project / "Keep.lean").write_text(HAVE, encoding="utf-8")
    repl = shlex.join([PYTHON, str(FAKES / "fake_repl.py"), str(graph(tmp_path))])
    env.setenv("SEGPILOT_MODEL_K", "2")
    env.setenv("SEGPILOT_MODEL_MAX_TOKENS", "16")
    work = tmp_path / "work"
    argv = ["finetune", str(project), "--workdir", str(work), "--repl-command", repl]
    assert segpilot_main([*argv, "--max-steps", "3", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "traced     2 files (0 unchanged, 0 failed): 5 steps" in out
    assert "segments   4" in out
    assert f"adapter    {work / 'adapter.gguf'}" in out
    check_adapter_file(work / "adapter.gguf", model_architecture="llama", allow_half=False)
    reports = json.loads((work / "eval.json").read_text())
    assert [r["config"] for r in reports] == ["base", "adapter"]
    assert reports[0]["overall"]["states"] == reports[1]["overall"]["states"] >= 1
    assert "name@k" in out and "adapter_path" in out


def test_ctrl_c_saves_a_checkpoint_that_resume_continues(
    env, segments: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    from segpilot.training import trainer

    real = trainer.batch_loss
    calls = {"n": 0}

    def interrupted_on_the_third(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer, "batch_loss", interrupted_on_the_third)
    out = tmp_path / "adapter"
    argv = ["train", str(segments), "-o", str(out), "--quiet", "--group-by", "source,transcript"]
    argv += ["--max-steps", "4", "--batch-tokens", "256"]
    assert segpilot_main(argv) == 130
    err = capsys.readouterr().err
    assert "interrupted at step 2; checkpoint saved in" in err and "--resume" in err
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step-0000002"]
    monkeypatch.setattr(trainer, "batch_loss", real)
    assert segpilot_main([*argv, "--resume"]) == 0
    assert _record(out)["metrics"]["steps"] == 4


def test_target_only_logits_and_a_shared_prefix_give_the_full_loss(env, segments: Path) -> None:
    import torch

    from segpilot.engine.settings import TrainingSettings, load_settings
    from segpilot.model.presets import get_preset
    from segpilot.training import examples as ex
    from segpilot.training import trainer
    from segpilot.training.base import load_base

    model, tok, info = load_base(None, None, load_settings(file={}).training.cache_dir)
    model = trainer.lora_model(model, TrainingSettings(dropout=0.0))
    rows = ex.read_rows(segments, ("source", "transcript"))[:6]
    examples, _ = ex.tokenize_rows(
        rows, get_preset("segment"), ex.Tokenizer(tok, info.add_bos), max_length=512
    )
    batch = trainer.pad_batch(examples, tok.pad_token_id or 0, "cpu")
    assert trainer._body_and_head(model) is not None
    # The preset's first line is common to every prompt, so the fast path runs it once.
    assert batch["shared_prefix"] >= trainer.MIN_SHARED_PREFIX
    with torch.no_grad():
        for reduction in ("mean", "sum"):
            fast = float(trainer.batch_loss(model, batch, reduction=reduction))
            full = float(trainer.full_batch_loss(model, batch, reduction=reduction))
            assert abs(fast - full) <= 1e-4 * max(1.0, abs(full))
