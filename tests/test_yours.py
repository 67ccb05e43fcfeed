"""helpers.yours: which components are the learner's, read from a folder of saved notebooks."""

from __future__ import annotations

import types
from pathlib import Path

import nbformat
import pytest
import torch
from nbformat.v4 import new_code_cell, new_notebook

from helpers import attention, positional, transformer, yours
from helpers.checks.core import Case, check, generator, randn, seeded

SETUP = "import math\nimport torch\nfrom torch import nn\nimport helpers\nfrom helpers import attention\n" \
    "helpers.setup()"


def _module_check(reference: type, build: tuple, inputs: tuple):
    """A small class check in the course's style: the reference's weights in, the same outputs out."""

    def run(cls):
        with seeded(0):
            ref = reference(*build)
            model = cls(*build)
        model.load_state_dict(ref.state_dict(), strict=False)
        out = model.eval()(*inputs)
        return out[0] if isinstance(out, tuple) else out

    @check(reference=reference, passed="ok")
    def check_component():
        yield Case("one input", run=run)

    return check_component


g = generator(0)
x = randn(g, 2, 4, 16)
CHECKS = types.SimpleNamespace(
    check_MultiHeadAttention=_module_check(yours._reference("MultiHeadAttention", {}), (16, 2), (x, x, x)),
    check_PositionalEncoding=_module_check(positional.PositionalEncoding, (16, 50, 0.0), (x,)),
    check_FeedForward=_module_check(transformer.FeedForward, (16, 32, 0.0), (x,)),
    check_EncoderLayer=_module_check(transformer.EncoderLayer, (16, 2, 32, 0.0), (x,)),
    check_DecoderLayer=_module_check(transformer.DecoderLayer, (16, 2, 32, 0.0), (x, x)),
)

CORRECT_MHA = '''
class MultiHeadAttention(attention.MultiHeadAttention):
    def __init__(self, d_model, num_heads, dropout=0.0):
        print("the learner's print must not reach the notebook 09")
        super().__init__(d_model, num_heads, dropout=dropout)
'''
STUB_PE = '''
class PositionalEncoding(nn.Module):
    def __init__(self, d_model, max_len=5000, dropout=0.1):
        super().__init__()
        # YOUR CODE HERE
        raise NotImplementedError()
'''
SYNTAX_ERROR_FF = "class FeedForward(nn.Module):\n    def __init__(self, d_model, d_ff, dropout=0.1)\n        pass\n"
# Uses the names MultiHeadAttention and FeedForward: they must be the resolved ones, not notebook leftovers.
CORRECT_ENCODER = '''
class EncoderLayer(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.1, norm_first=False):
        super().__init__()
        self.self_attention = MultiHeadAttention(d_model, num_heads, dropout=dropout)
        self.feed_forward = FeedForward(d_model, d_ff, dropout)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout1, self.dropout2 = nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(self, x, mask=None):
        x = self.norm1(x + self.dropout1(self.self_attention(x, x, x, mask)[0]))
        return self.norm2(x + self.dropout2(self.feed_forward(x)))
'''
WRONG_DECODER = '''
class DecoderLayer(helpers.transformer.DecoderLayer):
    def forward(self, y, memory, tgt_mask=None, src_mask=None):
        return y  # runs, but is wrong
'''
TRANSFORMER_RAISES = "import does_not_exist_anywhere\nclass Transformer: pass\n"


def _solution(grade_id: str, code: str):
    return new_code_cell(code, metadata={"nbgrader": {"grade": False, "grade_id": grade_id, "locked": False,
                                                      "schema_version": 3, "solution": True, "task": False}})


def _write(folder: Path, name: str, *cells, setup: str = SETUP) -> None:
    nbformat.write(new_notebook(cells=[new_code_cell(setup), *cells]), folder / name)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    _write(tmp_path, "05_multi_head_attention.ipynb", _solution("MultiHeadAttention", CORRECT_MHA))
    _write(tmp_path, "06_positional_encoding.ipynb", _solution("PositionalEncoding", STUB_PE))
    _write(tmp_path, "07_encoder.ipynb", _solution("FeedForward", SYNTAX_ERROR_FF),
           _solution("EncoderLayer", CORRECT_ENCODER))
    _write(tmp_path, "08_decoder.ipynb", _solution("DecoderLayer", WRONG_DECODER),
           setup=SETUP + "\nimport helpers.transformer")
    return tmp_path  # and no 09 at all


def test_each_component_gets_the_right_source_and_reason(folder, capsys):
    table = yours.resolve(folder, checks=CHECKS)
    assert list(table) == [c.name for c in yours.COMPONENTS]
    origins = {name: (r.origin, r.reason) for name, r in table.items()}
    assert origins["MultiHeadAttention"] == ("yours", "its check passes")
    assert origins["PositionalEncoding"] == ("reference", "not attempted yet (still the stub)")
    assert origins["FeedForward"][0] == "reference" and "syntax error on line 2" in origins["FeedForward"][1]
    assert origins["EncoderLayer"] == ("yours", "its check passes")
    assert origins["DecoderLayer"][0] == "reference" and origins["DecoderLayer"][1].startswith("its check fails: ")
    assert origins["Transformer"] == ("reference", "no notebook 09_*.ipynb in this folder")
    assert "must not reach" not in capsys.readouterr().out
    assert all("\n" not in r.reason and len(r.reason) <= 110 for r in table.values())


def test_the_model_is_built_from_the_resolved_classes(folder):
    table = yours.resolve(folder, checks=CHECKS)
    mine, ff = table["MultiHeadAttention"].cls, table["FeedForward"].cls
    model = table["Transformer"].cls(11, 11, 16, 2, 2, 32, 0.0, share_embeddings=True)
    encoder, decoder = model.encoder.layers[0], model.decoder.layers[1]
    assert type(encoder) is table["EncoderLayer"].cls and isinstance(encoder.self_attention, mine)
    assert isinstance(encoder.feed_forward, ff) and ff is transformer.FeedForward
    # The reference decoder layer (the learner's failed) still holds the learner's passing attention.
    assert isinstance(decoder.self_attention, mine) and isinstance(decoder.cross_attention, mine)
    # Every weight of the reference fits, so the capstone starts it where the reference would.
    with seeded(0):
        reference = transformer.Transformer(11, 11, 16, 2, 2, 32, 0.0, share_embeddings=True)
    model.load_state_dict(reference.state_dict())
    src, tgt = torch.randint(3, 11, (2, 5)), torch.randint(3, 11, (2, 4))
    torch.testing.assert_close(model.eval()(src, tgt), reference.eval()(src, tgt))


def test_a_running_cell_replaces_the_saved_one_and_the_namespace_is_clean(folder):
    leftover = "class MultiHeadAttention: pass"  # noqa: F841  # a global of the test: must not be seen
    running = {"PositionalEncoding": "from helpers.positional import PositionalEncoding"}
    table = yours.resolve(folder, running=running, checks=CHECKS)
    assert table["PositionalEncoding"].origin == "yours"
    assert table["EncoderLayer"].cls.__module__ == "yours_07"


@pytest.mark.parametrize(("content", "words"), [
    ("not json", "could not be read"),
    ('{"cells": 3}', "could not be read"),
])
def test_unreadable_notebooks_fall_back(tmp_path, content, words):
    (tmp_path / "05_mha.ipynb").write_text(content)
    table = yours.resolve(tmp_path, checks=CHECKS)
    assert table["MultiHeadAttention"].origin == "reference" and words in table["MultiHeadAttention"].reason


def test_missing_exercise_raising_cell_no_class_and_no_check(tmp_path):
    _write(tmp_path, "05_mha.ipynb", new_code_cell("x = 1"))  # the notebook, but no exercise in it
    _write(tmp_path, "06_pe.ipynb", _solution("PositionalEncoding", "PositionalEncoding = 3"))
    _write(tmp_path, "07_enc.ipynb", _solution("FeedForward", "raise SystemExit('bye')"),
           _solution("EncoderLayer", "from helpers.transformer import EncoderLayer"))
    _write(tmp_path, "09_t.ipynb", _solution("Transformer", TRANSFORMER_RAISES))
    table = yours.resolve(tmp_path, checks=types.SimpleNamespace())  # and no checks at all
    reasons = {name: r.reason for name, r in table.items()}
    assert reasons["MultiHeadAttention"] == "05_mha.ipynb has no MultiHeadAttention exercise"
    assert reasons["PositionalEncoding"] == "its cell defines no class PositionalEncoding"
    assert reasons["FeedForward"] == "its cell raised SystemExit: bye"
    assert reasons["EncoderLayer"] == "this version of helpers has no check for EncoderLayer"
    assert reasons["Transformer"].startswith("its cell raised ModuleNotFoundError")
    assert all(r.origin == "reference" for r in table.values())


def test_the_complete_course_resolves_every_component_as_the_learners():
    # The complete notebooks hold every solution: each class exercise of 05-09 is found and passes its check.
    table = yours.resolve(Path(__file__).parents[1] / "notebooks")
    assert set(table) == {"MultiHeadAttention", "PositionalEncoding", "FeedForward", "EncoderLayer", "DecoderLayer",
                          "Transformer"}
    assert all(r.origin == "yours" for r in table.values()), yours.table_text(table)
    text = yours.table_text(table)
    assert text.splitlines()[0].split() == ["component", "from", "why"] and len(text.splitlines()) == 8


def test_resolve_can_stop_after_a_component(tmp_path):
    # Notebook 14 needs only MultiHeadAttention: the later components are neither read nor checked.
    _write(tmp_path, "09_t.ipynb", _solution("Transformer", TRANSFORMER_RAISES))
    table = yours.resolve(tmp_path, last="MultiHeadAttention")
    assert list(table) == ["MultiHeadAttention"] and table["MultiHeadAttention"].origin == "reference"
    with pytest.raises(ValueError, match="no component called 'Attention'"):
        yours.resolve(tmp_path, last="Attention")


def test_reference_fallbacks_keep_the_contract():
    mha = yours._reference("MultiHeadAttention", {})
    assert isinstance(mha(16, 2, 0.1).dropout, torch.nn.Dropout) and mha(16, 2, 0.1).dropout.p == 0.1
    assert issubclass(mha, attention.MultiHeadAttention)
    with pytest.raises(ValueError, match="no component called"):
        yours._reference("Embedding", {})


def test_payload_says_trained_only_when_every_component_is_yours(folder):
    table = yours.resolve(folder, checks=CHECKS)
    own = yours.OwnModel(torch.nn.Linear(1, 1), 0.98765, table, [])
    payload = own.payload(reached=True)
    assert payload["trained"] is False and payload["accuracy"] == 0.988
    assert payload["components"]["MultiHeadAttention"] == "yours"
    assert payload["components"]["DecoderLayer"] == "reference"
