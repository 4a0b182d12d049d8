from . import Case

CASES = [
    Case("cbam_channel", captured={"gate": lambda B, C, H, W: (B, C, 1, 1)}),
    Case("cbam_spatial", captured={"gate": lambda B, C, H, W: (B, 1, H, W)}),
    Case("cbam", captured={"channel": lambda B, C, H, W: (B, C, 1, 1), "spatial": lambda B, C, H, W: (B, 1, H, W)}),
]
