from . import Case

CASES = [
    # output is one residual vector per codeword, (B, K, C), K = 32 by default
    Case("encoding", out_shape=lambda B, C, H, W: (B, 32, C),
         captured={"assignments": lambda B, C, H, W: (B, 32, H, W)}),
    # BatchNorm1d over codewords normalises B*C values per codeword: batch 1 trains
    Case("lvc", captured={"gamma": lambda B, C, H, W: (B, C)}),
    # C = 16: the 7x7 stem (fan-in 49 C) with the generic tests' perturbed weights gives outputs of
    # order 300 at C = 64, where float32 reordering (channels_last) differs by ~5e-4 > the fixed atol
    Case("evc", channels=16, captured={"gamma": lambda B, C, H, W: (B, C)}),
]
