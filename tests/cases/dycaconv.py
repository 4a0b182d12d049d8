from . import Case

CASES = [
    # create_block("dycaconv", C): a 3x3, stride-1 convolution C -> C behind the mixed coordinate gate
    Case("dycaconv", captured={
        "g_h": lambda B, C, H, W: (B, C, H, 1),
        "g_w": lambda B, C, H, W: (B, C, 1, W),
        "pi": lambda B, C, H, W: (B, 2),
        "gate": lambda B, C, H, W: (B, C, H, W),
    }),
]
