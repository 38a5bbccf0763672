"""``python -m labflow.cli``: the ``labflow`` command."""

from labflow.cli import main

main()
