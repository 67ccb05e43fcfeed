"""Exercise checks, one per exercise, in course order: `checks.check_<exercise>(candidate)`.

Each returns a `CheckResult` (✅ passed / ❌ failed with a hint / ⏳ not attempted) and
never raises, whatever the candidate does.
"""

from helpers.checks.blocks import check_decoder_layer, check_layer_norm
from helpers.checks.core import MIME_TYPE, CheckResult, Status
from helpers.checks.decoding import check_greedy_decode
from helpers.checks.efficient import check_cached_attention_step, check_online_softmax_update
from helpers.checks.heads import check_merge_heads, check_multi_head_attention, check_split_heads
from helpers.checks.nb11_gpt import check_causal_lm_loss, check_top_k_filter, check_top_p_filter
from helpers.checks.nb12_modern import check_apply_rope, check_repeat_kv, check_rms_norm
from helpers.checks.positional import check_sinusoidal_positional_encoding
from helpers.checks.qkv import check_project_qkv
from helpers.checks.scaling import check_scaled_scores
from helpers.checks.scores import check_attention_scores
from helpers.checks.softmax import check_causal_mask, check_scaled_dot_product_attention, check_softmax
from helpers.checks.warmup import check_batched_dot

__all__ = [
    "MIME_TYPE",
    "CheckResult",
    "Status",
    "check_batched_dot",  # 00
    "check_project_qkv",  # 01
    "check_attention_scores",  # 02
    "check_scaled_scores",  # 03
    "check_softmax",  # 04
    "check_scaled_dot_product_attention",  # 04
    "check_causal_mask",  # 04
    "check_split_heads",  # 05
    "check_merge_heads",  # 05
    "check_multi_head_attention",  # 05
    "check_sinusoidal_positional_encoding",  # 06
    "check_layer_norm",  # 07
    "check_decoder_layer",  # 08
    "check_greedy_decode",  # 09
    "check_cached_attention_step",  # 10
    "check_online_softmax_update",  # 10
    "check_causal_lm_loss",  # 11
    "check_top_k_filter",  # 11
    "check_top_p_filter",  # 11
    "check_apply_rope",  # 12
    "check_rms_norm",  # 12
    "check_repeat_kv",  # 12
]
