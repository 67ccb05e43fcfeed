"""helpers.training: the schedules, and a training smoke test that catches a dropped causal mask."""

from __future__ import annotations

import pytest
import torch

from helpers.data import VOCAB, encode_pairs, reversal_pairs
from helpers.training import exact_match, teacher_forced_loss, train, warmup_linear_decay, warmup_schedule
from helpers.transformer import Transformer


def test_paper_schedule_peaks_at_warmup():
    rate = warmup_schedule(512, 4000)
    values = [rate(s) for s in range(20000)]
    assert max(range(20000), key=values.__getitem__) == 3999
    assert values[3999] == pytest.approx(512**-0.5 * 4000**-0.5)
    assert values[1000] < values[3999] and values[19999] < values[3999]


def test_linear_decay_schedule():
    rate = warmup_linear_decay(10, 100)
    assert rate(0) == pytest.approx(0.1) and rate(9) == pytest.approx(1.0) and rate(99) < 0.02
    with pytest.raises(ValueError, match="warmup_steps < total_steps"):
        warmup_linear_decay(100, 100)


def small_model(causal: bool) -> Transformer:
    torch.manual_seed(0)
    return Transformer(len(VOCAB), len(VOCAB), d_model=32, num_heads=2, num_layers=1, d_ff=64, dropout=0.0,
                       share_embeddings=True, causal=causal)


@pytest.fixture(scope="module")
def reversal_data():
    alphabet = "abcdef"
    train_pairs = reversal_pairs(3000, seed=0, min_len=3, max_len=5, alphabet=alphabet)
    test_pairs = reversal_pairs(100, seed=1, min_len=3, max_len=5, alphabet=alphabet)
    return encode_pairs(train_pairs), test_pairs


def test_training_learns_and_a_dropped_causal_mask_is_caught(reversal_data):
    data, test_pairs = reversal_data
    masked, cheater = small_model(causal=True), small_model(causal=False)
    # 200 steps: exact match 0.96 with the mask, 0.0 without (250 steps: 0.99; 150: 0.74, under the bar)
    losses = train(masked, data, steps=200, batch_size=64, lr=1e-2, progress=False)
    train(cheater, data, steps=200, batch_size=64, lr=1e-2, progress=False)
    assert sum(losses[-10:]) < 0.6 * sum(losses[:10])
    test_data = encode_pairs(test_pairs)
    assert teacher_forced_loss(cheater, test_data) < teacher_forced_loss(masked, test_data)
    masked_em, cheater_em = exact_match(masked, test_pairs, max_len=6), exact_match(cheater, test_pairs, max_len=6)
    assert masked_em >= 0.8, masked_em
    assert cheater_em <= 0.3, cheater_em


def test_label_smoothed_loss_is_torchs_and_ignores_padding():
    from helpers.training import label_smoothed_loss

    g = torch.Generator().manual_seed(0)
    logits, targets = torch.randn(2, 4, 7, generator=g), torch.randint(3, 7, (2, 4), generator=g)
    targets[0, -1] = 0
    expected = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=0,
                                                 label_smoothing=0.2)
    torch.testing.assert_close(label_smoothed_loss(logits, targets, 0.2), expected)
    changed = logits.clone()
    changed[0, -1] += 5.0  # the padded position's logits do not count
    torch.testing.assert_close(label_smoothed_loss(changed, targets, 0.2), expected)


def test_train_step_updates_steps_the_schedule_and_returns_a_float():
    from helpers.training import train_step

    model = small_model(causal=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5**step)
    batch = encode_pairs([("abc", "cba"), ("ab", "ba")])
    before = [p.detach().clone() for p in model.parameters()]
    loss = train_step(model, optimizer, scheduler, batch.src, batch.tgt_in, batch.tgt_out)
    assert isinstance(loss, float) and loss > 0
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.05)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_greedy_decoding_by_forward_equals_the_models_own():
    from helpers.training import greedy_decode_any

    class ForwardOnly(torch.nn.Module):  # a learner's Transformer: forward(src, tgt) and nothing else
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, src, tgt):
            return self.model(src, tgt)

    model = small_model(causal=True).eval()
    src = encode_pairs([("abcd", ""), ("ba", "")]).src
    assert torch.equal(greedy_decode_any(ForwardOnly(model), src, 6), greedy_decode_any(model, src, 6))
