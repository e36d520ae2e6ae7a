"""Evaluation loop: top-1, top-5, loss, image count, seconds and throughput."""
import dataclasses
import time

from mindspore import nn
from tqdm import tqdm

from ..data.loader import iterate_batches
from .train_step import top_k_correct


def evaluate(model: nn.Cell, dataset, loss_fn: nn.Cell, steps: int = None, progress: bool = True,
             desc: str = "validate", normalize: nn.Cell = None) -> dict:
    """Run ``model`` in eval mode over ``dataset`` (image, index label) batches; ``normalize`` (a
    ``Normalize`` or None) turns uint8 batches into the network's input.

    Returns top1 / top5 (percent), loss (mean per image), images, seconds, img_per_s.
    """
    was_training = model.training
    model.set_train(False)
    correct1 = correct5 = images = 0
    loss_sum = 0.0
    start = time.perf_counter()
    try:
        with tqdm(total=steps, desc=desc, disable=not progress, leave=False, dynamic_ncols=True) as bar:
            for batch, labels in iterate_batches(dataset):
                logits = model(batch if normalize is None else normalize(batch))
                n = int(labels.shape[0])
                loss_sum += float(loss_fn(logits, labels).asnumpy()) * n
                correct1 += top_k_correct(logits, labels, 1)
                correct5 += top_k_correct(logits, labels, 5)
                images += n
                bar.update(1)
    finally:
        model.set_train(was_training)
    seconds = time.perf_counter() - start
    if images == 0:
        raise ValueError("the validation set is empty")
    return dict(top1=100.0 * correct1 / images, top5=100.0 * correct5 / images, loss=loss_sum / images,
                images=images, seconds=seconds, img_per_s=images / seconds)


def validate(args) -> dict:
    """The job behind validate.py: load a checkpoint (or published weights) and evaluate a split."""
    from ..config import data_config
    from ..data.loader import create_loader
    from ..loss import create_loss
    from ..models import create_model, get_pretrained_cfg
    from ..models.registry import resolve_name
    from ..weights import load_checkpoint
    from ..utils.device import set_device
    from .train_step import device_normalize

    resolve_name(args.model)  # a misspelled model name is the first error
    onnx = args.engine == "onnxruntime"
    if onnx:
        from .onnx_runtime import import_onnxruntime

        import_onnxruntime()
    elif args.onnx_path:
        raise ValueError("--onnx_path needs --engine onnxruntime")
    if not args.ckpt_path and not args.pretrained and not (onnx and args.onnx_path):
        run_config = (f"; {args.config} names no checkpoint to validate (a run's config.yaml keeps only the weights it "
                      f"started from): give --ckpt_path RUN/{args.model}-best.ckpt") if args.config else ""
        raise ValueError("validate.py needs --ckpt_path FILE or --pretrained (it never evaluates random weights)"
                         + run_config)
    set_device(args.device_target, args.mode)
    # ONNX Runtime takes float32 normalised on the host; MindSpore normalises uint8 batches in the step
    data_cfg = dataclasses.replace(data_config(args), normalize_on_device=not onnx)
    model_cfg = get_pretrained_cfg(args.model)
    data = create_loader(data_cfg, args.val_split, False, model_cfg)
    num_classes = data.num_classes
    if onnx and args.onnx_path:  # the file is the network
        model = None
    elif args.ckpt_path:  # strict: a checkpoint's classifier is never replaced when validating
        model = load_checkpoint(create_model(args.model, num_classes=num_classes, in_channels=args.in_channels),
                                args.ckpt_path)
    else:
        if num_classes != 1000:
            raise ValueError(f"--pretrained weights have 1000 ImageNet classes but {args.dataset} has "
                             f"{num_classes}; validate a fine-tuned checkpoint with --ckpt_path")
        model = create_model(args.model, pretrained=True, in_channels=args.in_channels)
    if onnx:
        from .onnx_runtime import classifier_for

        model = classifier_for(args.onnx_path, model, args.model, args.image_resize)
        if model.num_classes not in (None, num_classes):
            raise ValueError(f"{model.label}: has {model.num_classes} classes but {args.dataset} has {num_classes}")
    result = evaluate(model, data.dataset, create_loss("CE", num_classes), data.steps,
                      normalize=device_normalize(data_cfg, model_cfg))
    engine = f" ({args.engine})" if onnx else ""
    print(f"{args.model}{engine} on {args.dataset}/{args.val_split}: top-1 {result['top1']:.2f}%, top-5 {result['top5']:.2f}%, "
          f"loss {result['loss']:.4f}, {result['images']} images, {result['seconds']:.1f} s, "
          f"{result['img_per_s']:.1f} img/s")
    return result
