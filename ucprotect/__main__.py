"""``python -m ucprotect ...`` (also what ``torchrun -m ucprotect train ...`` launches)."""
from .cli import main

main()
