"""Validate a checkpoint: ``python validate.py --model=res2net50 --dataset=imagenet --data_dir=DIR
--val_split=val --ckpt_path=FILE`` (MindSpore or official PyTorch file) or ``--pretrained``;
``python validate.py --ckpt_path=RUN_DIR`` alone evaluates a training run's best checkpoint on its own
validation data, prepared as the run prepared it.

The same program is installed by pip as ``res2net-validate``."""
from mindcv_res2net.cli.validate import cli

if __name__ == "__main__":
    cli()
