"""One run, phase by phase: the resume decision, the agent phase, the judge phase, regenerate.

`executor.RunExecutor` ties them together and is the run's exception boundary.
"""
