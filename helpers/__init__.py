"""helpers: the shared package of "Attention, step by step".

Two wings. The **content wing** is what the notebooks teach and import: one module per concept,
in course order, so a reader finds the code where the notebook introduced it.

    00  helpers.environment   setup(): seeds, print options, threads, plot style, device
    00  helpers.tensors       shape validation, the batched dot product
    01  helpers.attention     Q = X W_Q, K = X W_K, V = X W_V                (project_qkv)
    02                        scores = Q Kᵀ                                  (attention_scores)
    03                        Q Kᵀ / √d_k                                   (scaled_scores)
    04                        softmax, masks, softmax(Q Kᵀ / √d_k) V          (scaled_dot_product_attention)
    05                        split / merge heads, MultiHeadAttention
    02+ helpers.plotting      labelled attention heatmaps and the course's diagrams
    06  helpers.positional    sinusoidal and learned positional encodings
    07  helpers.transformer   LayerNorm, FeedForward, EncoderLayer, Encoder
    08                        DecoderLayer, Decoder
    09                        Transformer, greedy decoding
    07  helpers.toy_tasks     tiny tasks one layer learns in seconds: counting (07), reversal (08)
    09  helpers.data          the synthetic tasks (dates, reversal), vocabulary, padding
    09  helpers.training      schedules, label-smoothed loss, the training loop, exact match
    09  helpers.yours         which components are the learner's: their classes of 05-09, re-checked
    10  helpers.efficient     online softmax, chunked attention, the KV cache
    10  helpers.measure       median timings, peak memory, threads, torch's fused kernel
    11  helpers.corpus        the generated corpus (a probabilistic grammar) and its exact entropy floor
    11  helpers.gpt           GPT (GPT-2's layout, from_hf), the causal LM loss, training a language model
    11  helpers.sampling      greedy, temperature, top-k, top-p (nucleus), beam search, with the KV cache
    12  helpers.modern        RoPE, RMSNorm, SwiGLU, grouped-query attention, the Llama-style model (from_hf)
    12  helpers.latent        multi-head latent attention (DeepSeek-V2/V3, from_hf), its latent cache, absorbed form
    13  helpers.tokenizer     byte-level BPE (GPT-2's pre-tokenizer, merges by rank, END_OF_TEXT), bits per byte
    14  helpers.interpret     attention maps by hooks, pattern and induction scores, ablation before W_O, induction task
    00+ helpers.checks        the exercise checks, one `check_<name>` per exercise

The **tooling wing**, `helpers.course`, is the machinery of the `course` command (finding and
executing notebooks, workbooks, progress, slides, the benchmark). No notebook imports it, and
no content module does either (tests/test_wings.py enforces both).
"""

from helpers.environment import setup

__all__ = ["setup"]
__version__ = "0.1.0"
