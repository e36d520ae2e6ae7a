"""tests/train: the training job: schedules, optimizers and loss, the train step, device plans, training runs, the
run folder (checkpoints, ownership, locks, run.json, metrics.csv), resuming, stop signals and msrun."""
