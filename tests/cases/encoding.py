from . import Case

CASES = [
    # output is one residual vector per codeword, (B, K, C), K = 32 by default
    Case("encoding", out_shape=lambda B, C, H, W: (B, 32, C),
         captured={"assignments": lambda B, C, H, W: (B, 32, H, W)}),
    # BatchNorm1d over codewords normalises B*C values per codeword: batch 1 trains
    Case("lvc", captured={"gamma": lambda B, C, H, W: (B, C)}),
    Case("evc", captured={"gamma": lambda B, C, H, W: (B, C)}),
]
