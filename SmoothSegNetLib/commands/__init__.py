"""Sub-commands of the ``smoothsegnet`` command line.

Each module here defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int`` and is
listed in :data:`SmoothSegNetLib.cli.COMMAND_MODULES`.
"""
