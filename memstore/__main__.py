"""`python -m memstore` runs the `mem` command."""

from memstore.launch import main

main()
