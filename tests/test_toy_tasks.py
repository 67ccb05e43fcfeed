"""helpers.toy_tasks: the tasks need attention, a correct layer learns them, a failing class is replaced."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from helpers import toy_tasks
from helpers.checks import check_EncoderLayer
from helpers.checks.nb07_encoder import ENCODER_LAYER_MISTAKES
from helpers.transformer import DecoderLayer, EncoderLayer

pytestmark = pytest.mark.usefixtures("one_thread")


def test_counting_labels_are_each_tokens_count_in_its_sentence():
    tokens, counts = toy_tasks.counting_task(torch.Generator().manual_seed(0), batch=3)
    for sentence, labels in zip(tokens.tolist(), counts.tolist()):
        assert labels == [sentence.count(t) for t in sentence]


def test_reversal_target_is_the_source_backwards():
    src, target = toy_tasks.reversal_task(torch.Generator().manual_seed(0), batch=3)
    assert src.min() >= 2 and torch.equal(target, src.flip(1))  # 0 and 1 are padding and BOS


def test_a_correct_encoder_layer_learns_to_count():
    counting = toy_tasks.train_counter(EncoderLayer)
    assert counting.accuracy > 0.9 and counting.last_loss < counting.first_loss / 10


def test_a_correct_decoder_layer_learns_to_reverse():
    reversal = toy_tasks.train_reverser(DecoderLayer)
    assert reversal.accuracy > 0.9 and reversal.last_loss < reversal.first_loss / 10


def test_a_decoder_layer_without_cross_attention_cannot_reverse():
    """The task needs cross-attention: with the memory thrown away, the layer guesses."""
    class Blind(DecoderLayer):
        def forward(self, y, memory, tgt_mask=None, src_mask=None):
            return super().forward(y, torch.zeros_like(memory), tgt_mask, src_mask)

    assert toy_tasks.train_reverser(Blind).accuracy < 0.5


def test_choose_keeps_a_passing_class_and_replaces_a_failing_one():
    assert toy_tasks.choose(EncoderLayer, check_EncoderLayer, EncoderLayer)[1].startswith("Training your own")
    wrong = ENCODER_LAYER_MISTAKES[0].wrong
    chosen, line = toy_tasks.choose(wrong, check_EncoderLayer, EncoderLayer)
    assert chosen is EncoderLayer and "does not pass its check yet" in line


def test_choose_never_raises():
    def raising_check(candidate):
        raise AssertionError("nbgrader's validate mode raises on ❌")

    assert toy_tasks.choose(nn.Identity, raising_check, EncoderLayer)[0] is EncoderLayer
    assert toy_tasks.choose(None, check_EncoderLayer, EncoderLayer)[0] is EncoderLayer
