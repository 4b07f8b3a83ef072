"""Block attention for continuous batching: the same attention as SDPA over the whole block-diagonal mask."""

from __future__ import annotations

import types

import pytest
import torch
from transformers.generation.continuous_batching.utils import build_attention_mask
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from bayling.infer.paged_attention import block_attention

HEADS, KV_HEADS, DIM = 4, 2, 8


def _step(q_lens, k_lens, sliding_window=1, padding=0, dtype=torch.float32):
    """A flattened continuous-batching step: queries, keys and values of every request in one row,
    the mask transformers builds for it, and `padding` unused query slots at the end."""
    gen = torch.Generator().manual_seed(sum(q_lens) * 31 + sum(k_lens))
    cu_q = [0] + list(torch.tensor(q_lens).cumsum(0).tolist())
    cu_k = [0] + list(torch.tensor(k_lens).cumsum(0).tolist())
    q_total, k_total = cu_q[-1] + padding, cu_k[-1]
    query = torch.randn(1, HEADS, q_total, DIM, generator=gen).to(dtype)
    key = torch.randn(1, KV_HEADS, k_total, DIM, generator=gen).to(dtype)
    value = torch.randn(1, KV_HEADS, k_total, DIM, generator=gen).to(dtype)
    mask = torch.full((1, 1, q_total, k_total), torch.finfo(dtype).min, dtype=dtype)
    build_attention_mask(mask, cu_q, cu_k, sliding_window=sliding_window)
    kwargs = {"cu_seq_lens_q": torch.tensor(cu_q, dtype=torch.int32), "cu_seq_lens_k": torch.tensor(cu_k, dtype=torch.int32),
              "read_index": [], "write_index": []}
    return query, key, value, mask, kwargs, cu_q[-1]


MODULE = types.SimpleNamespace(num_key_value_groups=HEADS // KV_HEADS, is_causal=True)


@pytest.mark.parametrize("q_lens,k_lens,window", [
    ([1, 1, 1], [5, 9, 2], 1),            # three requests decoding one token each
    ([1, 4, 1, 3], [7, 4, 12, 8], 1),     # decodes mixed with prefills (one with cached keys)
    ([1, 6, 1], [10, 6, 3], 4),           # a sliding-window layer
])
def test_block_attention_equals_sdpa_over_the_whole_mask(q_lens, k_lens, window):
    query, key, value, mask, kwargs, used = _step(q_lens, k_lens, window, padding=2)
    expected, _ = sdpa_attention_forward(MODULE, query, key, value, mask, scaling=0.3, **kwargs)
    got, weights = block_attention(MODULE, query, key, value, mask, scaling=0.3, **kwargs)
    assert weights is None and got.shape == expected.shape == (1, query.shape[2], HEADS, DIM)
    torch.testing.assert_close(got[:, :used], expected[:, :used], atol=1e-5, rtol=1e-5)


def test_block_attention_in_bf16_stays_close_to_fp32():
    args = _step([1, 1, 5, 1], [30, 7, 5, 19], dtype=torch.bfloat16)
    query, key, value, mask, kwargs, used = args
    got, _ = block_attention(MODULE, query, key, value, mask, scaling=0.3, **kwargs)
    ref, _ = block_attention(MODULE, query.float(), key.float(), value.float(), mask.float(), scaling=0.3, **kwargs)
    torch.testing.assert_close(got.float()[:, :used], ref[:, :used], atol=3e-2, rtol=3e-2)


def test_calls_that_are_not_a_continuous_batching_step_go_to_transformers_sdpa():
    query, key, value, mask, kwargs, _ = _step([2, 2], [2, 2])
    leaky = mask.clone()
    leaky[..., 0] = 0.0  # the second request may see the first one's key: only whole-mask SDPA honours that
    expected, _ = sdpa_attention_forward(MODULE, query, key, value, leaky, scaling=0.3, **kwargs)
    as_step, _ = block_attention(MODULE, query, key, value, leaky, scaling=0.3, **kwargs)
    assert not torch.allclose(as_step[:, 2:], expected[:, 2:])  # read as a paged step, the leak is cut
    kwargs.pop("read_index")  # e.g. a packed training batch: cu_seq_lens but no paged cache
    got, _ = block_attention(MODULE, query, key, value, leaky, scaling=0.3, **kwargs)
    assert torch.equal(got, expected)
