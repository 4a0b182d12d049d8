from . import Case

CASES = [
    # nn.Conv2d defaults of the library: in = out = C, 3x3, stride 1, "same" padding, K = 4, tau = 30
    Case("dynamic_conv", captured={"attention": lambda B, C, H, W: (B, 4)}),
    # BatchNorm on the pooled 1x1 features of the attention branch: batch 1 cannot train
    Case("dka", captured={"attention": lambda B, C, H, W: (B, 4)}, batch1_train="error"),
]
