"""Sweep definitions: each file's get_sweep() returns a launch.sweeps.Sweep,
and its docstring holds the command that runs it."""
