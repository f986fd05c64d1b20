"""`python -m rtseg` (also what `torchrun -m rtseg` runs)."""

from rtseg.cli import main

main()
