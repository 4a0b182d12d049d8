from . import Case

CASES = [
    # default configuration: embedded Gaussian, 2x2 sub-sampling of the keys, fast (SDPA) path;
    # the captured map lives on the pooled key grid
    Case("nonlocal", captured={"attention": lambda B, C, H, W: (B, 1, H // 2, W // 2)}),
]
