from . import Case

CASES = [
    # default configuration: attention pooling, add fusion, r = 16 (C_r = 4 for C = 64)
    Case("gc", captured={"context_mask": lambda B, C, H, W: (B, 1, H, W)}),
]
