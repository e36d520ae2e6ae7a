"""The training job behind train.py: the run folder (its files, rotation, resume, lock), the compiled train
step, the training state a checkpoint holds, stopping on SIGINT/SIGTERM, and the trainer that runs epochs."""
