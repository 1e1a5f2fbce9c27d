"""`python -m opsrunner.cli`: the same as the `opsrunner` script."""

from . import main

main()
