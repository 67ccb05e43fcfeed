"""Exercise checks, one per exercise, in course order: `checks.check_<exercise>(candidate)`.

Each returns a `CheckResult` (✅ passed / ❌ failed with a hint / ⏳ not attempted) and never
raises, whatever the candidate does. `core` runs them all (its docstring is the recipe for a new
check); each notebook's checks sit in a module of their own:

    00  nb00_warmup        check_batched_dot
    01  nb01_qkv           check_project_qkv
    02  nb02_scores        check_attention_scores
    03  nb03_scaling       check_scaled_scores
    04  nb04_softmax       check_softmax, check_padding_mask, check_causal_mask,
                           check_scaled_dot_product_attention
    05  nb05_multi_head    check_split_heads, check_merge_heads, check_multi_head_attention,
                           check_MultiHeadAttention
    06  nb06_positional    check_sinusoidal_positional_encoding, check_PositionalEncoding
    07  nb07_encoder       check_layer_norm, check_FeedForward, check_EncoderLayer
    08  nb08_decoder       check_decoder_layer, check_DecoderLayer
    09  nb09_transformer   check_Transformer, check_label_smoothed_loss, check_warmup_rate, check_train_step,
                           check_greedy_decode
    10  nb10_efficient     check_cached_attention_step, check_online_softmax_update,
                           check_chunked_attention
    11  nb11_gpt           check_causal_lm_loss, check_top_k_filter, check_top_p_filter
    12  nb12_modern        check_apply_rope, check_rms_norm, check_repeat_kv, check_absorb_query
    13  nb13_tokens        check_pair_counts, check_merge, check_train_merges, check_BPETokenizer
    14  nb14_reading       check_previous_token_score, check_induction_score, check_ablate_head
"""

from helpers.checks.core import MIME_TYPE, CheckResult, Status
from helpers.checks.nb00_warmup import check_batched_dot
from helpers.checks.nb01_qkv import check_project_qkv
from helpers.checks.nb02_scores import check_attention_scores
from helpers.checks.nb03_scaling import check_scaled_scores
from helpers.checks.nb04_softmax import (
    check_causal_mask,
    check_padding_mask,
    check_scaled_dot_product_attention,
    check_softmax,
)
from helpers.checks.nb05_multi_head import (
    check_merge_heads,
    check_multi_head_attention,
    check_MultiHeadAttention,
    check_split_heads,
)
from helpers.checks.nb06_positional import check_PositionalEncoding, check_sinusoidal_positional_encoding
from helpers.checks.nb07_encoder import check_EncoderLayer, check_FeedForward, check_layer_norm
from helpers.checks.nb08_decoder import check_decoder_layer, check_DecoderLayer
from helpers.checks.nb09_transformer import (
    check_greedy_decode,
    check_label_smoothed_loss,
    check_train_step,
    check_Transformer,
    check_warmup_rate,
)
from helpers.checks.nb10_efficient import (
    check_cached_attention_step,
    check_chunked_attention,
    check_online_softmax_update,
)
from helpers.checks.nb11_gpt import check_causal_lm_loss, check_top_k_filter, check_top_p_filter
from helpers.checks.nb12_modern import check_absorb_query, check_apply_rope, check_repeat_kv, check_rms_norm
from helpers.checks.nb13_tokens import check_BPETokenizer, check_merge, check_pair_counts, check_train_merges
from helpers.checks.nb14_reading import check_ablate_head, check_induction_score, check_previous_token_score

__all__ = [
    "MIME_TYPE",
    "CheckResult",
    "Status",
    "check_batched_dot",  # 00
    "check_project_qkv",  # 01
    "check_attention_scores",  # 02
    "check_scaled_scores",  # 03
    "check_softmax",  # 04
    "check_padding_mask",  # 04
    "check_scaled_dot_product_attention",  # 04
    "check_causal_mask",  # 04
    "check_split_heads",  # 05
    "check_merge_heads",  # 05
    "check_multi_head_attention",  # 05
    "check_MultiHeadAttention",  # 05
    "check_sinusoidal_positional_encoding",  # 06
    "check_PositionalEncoding",  # 06
    "check_layer_norm",  # 07
    "check_FeedForward",  # 07
    "check_EncoderLayer",  # 07
    "check_decoder_layer",  # 08
    "check_DecoderLayer",  # 08
    "check_Transformer",  # 09
    "check_label_smoothed_loss",  # 09
    "check_warmup_rate",  # 09
    "check_train_step",  # 09
    "check_greedy_decode",  # 09
    "check_cached_attention_step",  # 10
    "check_online_softmax_update",  # 10
    "check_chunked_attention",  # 10
    "check_causal_lm_loss",  # 11
    "check_top_k_filter",  # 11
    "check_top_p_filter",  # 11
    "check_apply_rope",  # 12
    "check_rms_norm",  # 12
    "check_repeat_kv",  # 12
    "check_absorb_query",  # 12
    "check_pair_counts",  # 13
    "check_merge",  # 13
    "check_train_merges",  # 13
    "check_BPETokenizer",  # 13
    "check_previous_token_score",  # 14
    "check_induction_score",  # 14
    "check_ablate_head",  # 14
]
