"""invicti_sim: the Invicti API simulator, as a package.

See ../invicti_sim.py (the entry point) and ../README.md."""
