from . import Case

CASES = [
    # nn.Conv2d defaults of the library: in = out = C, 3x3, stride 1, "same" padding, K = 4, tau = 30
    Case("dynamic_conv", captured={"attention": lambda B, C, H, W: (B, 4)}),
]
