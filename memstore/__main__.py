"""`python -m memstore` runs the `mem` command."""

from memstore.cli import main

main()
