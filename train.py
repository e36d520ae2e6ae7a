"""Train a registered model: ``python train.py -c configs/res2net/res2net50_digits_cpu.yaml`` or
``python train.py --model=res2net50 --dataset=cifar10 --data_dir=DIR`` (``--help`` lists every flag).

The same program is installed by pip as ``res2net-train``."""
from mindcv_res2net.cli.train import cli

if __name__ == "__main__":
    cli()
