"""pipelines: the Beam wiring of each data stage, the stage contract, and the `llmpipe` CLI."""
