from . import Case

CASES = [
    Case("sk", captured={"attention": lambda B, C, H, W: (B, 2, C, 1, 1)}, batch1_train="error"),
]
