from . import Case

CASES = [
    Case("cse", captured={"gate": lambda B, C, H, W: (B, C, 1, 1)}),
    Case("sse", captured={"gate": lambda B, C, H, W: (B, 1, H, W)}),
    Case("scse", captured={"channel": lambda B, C, H, W: (B, C, 1, 1), "spatial": lambda B, C, H, W: (B, 1, H, W)}),
]
