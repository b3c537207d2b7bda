"""``python -m mimo.train CONFIG.yaml [key=value ...] [--resume [PATH]]`` (one rank of a launch)."""

from mimo.train.cli import main

main()
