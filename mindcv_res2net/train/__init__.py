"""The training job behind train.py: its plan (settings, resume, run identity: decided once), the run folder (its
files and run.json, rotation, resume, lock), the compiled train step, the training state a checkpoint holds,
stopping on SIGINT/SIGTERM, and the trainer that runs epochs."""
