"""LightningCLI configs shipped with softpool-video (installed as softpool_video.configs).

Use them by name: `softpool-video fit --config ucf101/r2plus1d_50_softpool`.
Folders starting with "_" hold fragments that the named configs include.
"""
