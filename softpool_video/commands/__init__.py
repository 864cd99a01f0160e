"""One module per `softpool-video` subcommand, each exposing `main(argv) -> int`.

Commands are thin: they parse arguments, call the library and print. `softpool_video.cli`
maps command names to these modules.
"""
