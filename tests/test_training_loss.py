"""The training loss: what `batch_loss` saves (the target-only output layer, the batch's
shared prefix run once) must not change the loss or a single gradient.

The model here is a tiny randomly initialised Llama built from a config (no download), so
these run in a second; the slow tests in test_training_lora.py check the same on the real
default model.
"""

from __future__ import annotations

import warnings

import pytest
from tiny_llama import tiny_llama

from segpilot.training.examples import Example
from segpilot.training.trainer import MIN_SHARED_PREFIX, shared_prefix

PREFIX = tuple(range(10, 10 + MIN_SHARED_PREFIX + 4))


def _example(ids: tuple[int, ...], n_prompt: int) -> Example:
    return Example(ids, n_prompt, "g")


def test_shared_prefix_is_the_common_start_before_the_shortest_prompts_last_token() -> None:
    a = _example((*PREFIX, 1, 2, 3, 4), len(PREFIX) + 2)
    b = _example((*PREFIX, 1, 5, 6), len(PREFIX) + 1)
    # Common: PREFIX and the token 1; but b's last prompt token (the 1) predicts its first
    # target token, so its hidden state must come from the per-example pass.
    assert shared_prefix([a, b]) == len(PREFIX)
    c = _example((*PREFIX, 1, 2, 9, 9), len(PREFIX) + 3)
    assert shared_prefix([a, c]) == len(PREFIX) + 1  # a's prompt is the shorter one


def test_no_shared_prefix_for_one_example_or_a_short_common_start() -> None:
    a = _example((*PREFIX, 1, 2), len(PREFIX) + 1)
    assert shared_prefix([a]) == 0
    short = _example((*PREFIX[: MIN_SHARED_PREFIX - 1], 99, 98, 97), MIN_SHARED_PREFIX + 1)
    assert shared_prefix([a, short]) == 0
    other = _example((7, *PREFIX[1:], 1, 2), len(PREFIX) + 1)
    assert shared_prefix([a, other]) == 0


@pytest.fixture
def tiny_lora():
    torch = pytest.importorskip("torch")
    pytest.importorskip("peft", reason="the training extra is not installed")
    from segpilot.engine.settings import TrainingSettings
    from segpilot.training.trainer import lora_model

    torch.manual_seed(0)
    model = lora_model(tiny_llama(layers=3), TrainingSettings(dropout=0.0, rank=4))
    with torch.no_grad():  # LoRA's B starts at zero, which would leave A without gradient
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.5)
    return model


def _batch_examples() -> list[Example]:
    """Four examples of different lengths (so padding too) behind one common prompt start."""
    body = [(20, 21, 22), (23, 24), (25, 26, 27, 28, 29), (30,)]
    targets = [(40, 41), (42, 43, 44, 45), (46,), (47, 48, 49)]
    return [
        _example((*PREFIX, *b, *t), len(PREFIX) + len(b))
        for b, t in zip(body, targets, strict=True)
    ]


def _loss_and_grads(model, batch, loss_fn):
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.grad = None
    loss = loss_fn(model, batch)
    loss.backward()
    return float(loss.detach()), [p.grad.clone() for p in params]


def test_sharing_the_prefix_changes_neither_the_loss_nor_any_gradient(tiny_lora) -> None:
    import torch

    from segpilot.training.trainer import batch_loss, full_batch_loss, pad_batch

    batch = pad_batch(_batch_examples(), 0, "cpu")
    assert batch["shared_prefix"] == len(PREFIX)
    alone = dict(batch, shared_prefix=0)
    shared_loss, shared_grads = _loss_and_grads(tiny_lora, batch, batch_loss)
    alone_loss, alone_grads = _loss_and_grads(tiny_lora, alone, batch_loss)
    full_loss, full_grads = _loss_and_grads(tiny_lora, batch, full_batch_loss)
    assert shared_loss == pytest.approx(full_loss, rel=1e-5)
    assert alone_loss == pytest.approx(full_loss, rel=1e-5)
    assert any(float(g.abs().max()) > 1e-3 for g in full_grads)
    for shared, alone_g, full in zip(shared_grads, alone_grads, full_grads, strict=True):
        torch.testing.assert_close(shared, full, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(alone_g, full, rtol=1e-4, atol=1e-6)
    with torch.no_grad():
        total = float(batch_loss(tiny_lora, batch, reduction="sum"))
        full_total = float(full_batch_loss(tiny_lora, batch, reduction="sum"))
    assert total == pytest.approx(full_total, 1e-5)


def test_mask_dropout_keeps_each_element_with_probability_one_minus_p() -> None:
    torch = pytest.importorskip("torch")
    from segpilot.training.lora_dropout import MaskDropout

    torch.manual_seed(1)
    layer = MaskDropout(0.3)
    x = torch.full((500, 400), 2.0)
    y = layer(x)
    kept = y != 0
    # 200,000 draws: the kept share is within 5 standard deviations of 0.7, in every one
    # of the four 16-bit lanes a random word is cut into.
    sd = (0.3 * 0.7 / (kept.numel() / 4)) ** 0.5
    for lane in range(4):
        assert abs(float(kept.view(-1)[lane::4].float().mean()) - 0.7) < 5 * sd
    assert torch.allclose(y[kept], torch.tensor(2.0 / 0.7))  # inverted: the mean stays
    torch.manual_seed(1)
    assert torch.equal(layer(x), y)  # the mask follows torch's seeded generator
    layer.eval()
    assert layer(x) is x
    assert MaskDropout(0.0)(x) is x


def test_lora_model_puts_mask_dropout_on_every_lora_layer(tiny_lora) -> None:
    from segpilot.training.lora_dropout import MaskDropout

    found = [m for m in tiny_lora.modules() if isinstance(m, MaskDropout)]
    assert not found  # dropout 0: peft puts no dropout there, nothing to swap
    torch = pytest.importorskip("torch")
    from segpilot.engine.settings import TrainingSettings
    from segpilot.training.trainer import lora_model

    base = tiny_llama(vocab=32, hidden=16, intermediate=16, heads=2, kv_heads=1)
    model = lora_model(base, TrainingSettings(dropout=0.1, rank=2))
    found = [m for m in model.modules() if isinstance(m, MaskDropout)]
    assert len(found) == 2 * 2  # q_proj and v_proj in each of the two layers
    assert not any(type(m) is torch.nn.Dropout for m in model.modules())
    assert all(abs(m.p - 0.1) < 1 / 65536 for m in found)


def test_lora_model_warns_nothing() -> None:
    """`segpilot train` prints its own lines only: peft's question to the model about
    gradient checkpointing made transformers print a FutureWarning on every run."""
    pytest.importorskip("peft", reason="the training extra is not installed")
    from segpilot.engine.settings import TrainingSettings
    from segpilot.training.trainer import lora_model

    base = tiny_llama(layers=1, vocab=32, hidden=16, intermediate=16, heads=2, kv_heads=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lora_model(base, TrainingSettings(rank=2))
    assert [str(w.message) for w in caught] == []
