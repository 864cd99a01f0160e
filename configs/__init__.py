"""LightningCLI configs shipped with softpool-video (installed as softpool_video.configs).

Use them by name: `softpool-video fit --config ucf101/r2plus1d_50`.
The folders data/, trainer/ and strategy/ hold fragments that the named configs include
or that a command line stacks (`--config strategy/ddp`).
"""
