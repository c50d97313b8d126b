"""The DVC stages, one thin script each: `python -m stages.NAME [RECIPE]` (dvc.yaml).

Run as modules from the repository root, so each stage imports the proxyrank package of the
checkout it belongs to (a ladder rung's clone, a Slurm job's clone), never another one installed.
"""
