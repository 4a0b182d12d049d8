"""attnlib.cost: the measurements behind the book's Cost sections."""

import torch

import attnlib
from attnlib import cost


def test_parameters_and_flops_of_se_match_the_formulas():
    se = attnlib.create_block("se", 64, reduction=8)
    assert cost.parameters(se) == 2 * 64 * 8 + 8 + 64
    assert cost.flops(se, (3, 64, 5, 7)) == 4 * 3 * 64 * 8  # two linear layers, 2 FLOPs per multiply-add


def test_flops_count_a_convolution():
    conv = torch.nn.Conv2d(8, 16, 3, padding=1, bias=False)
    assert cost.flops(conv, (2, 8, 6, 5)) == 2 * (2 * 16 * 6 * 5) * (8 * 3 * 3)


def test_created_bytes_counts_new_tensors_not_views():
    se = attnlib.create_block("se", 32, reduction=4)
    B, C, H, W, Cr = 2, 32, 6, 5, 8
    # mean (B,C), fc1 (B,Cr), relu (B,Cr), fc2 (B,C), sigmoid (B,C), the None-index view (free), output (B,C,H,W)
    assert cost.created_bytes(se, (B, C, H, W)) == 4 * B * (3 * C + 2 * Cr + C * H * W)
    assert cost.created_bytes(se.double(), torch.randn(B, C, H, W, dtype=torch.float64)) == 8 * B * (3 * C + 2 * Cr + C * H * W)


def test_forward_ms_is_a_positive_median_and_restores_threads():
    se = attnlib.create_block("se", 16, reduction=4)
    threads = torch.get_num_threads()
    ms = cost.forward_ms(se, torch.randn(2, 16, 8, 8), repeats=3, warmup=1, threads=1)
    assert ms > 0 and torch.get_num_threads() == threads
