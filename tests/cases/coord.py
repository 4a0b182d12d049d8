from . import Case

CASES = [
    # official configuration: r = 32, C_r = max(8, C // 32) = 8 for C = 64
    Case("coord", captured={
        "g_h": lambda B, C, H, W: (B, C, H, 1),
        "g_w": lambda B, C, H, W: (B, C, 1, W),
        "gate": lambda B, C, H, W: (B, C, H, W),
    }),
]
