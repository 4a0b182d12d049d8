from . import Case

CASES = [
    Case("eca", captured={"gate": lambda B, C, H, W: (B, C, 1, 1)}),
]
