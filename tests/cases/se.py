from . import Case

CASES = [
    Case("se", captured={"gate": lambda B, C, H, W: (B, C, 1, 1)}),
]
