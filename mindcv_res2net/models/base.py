"""What every network of the zoo shares: feature maps (``features_only``, ``forward_intermediates``,
``feature_info``) and the classifier head (``global_pool``, ``reset_classifier``), in timm's terms."""
import numbers
import time
from typing import List, Optional, Sequence, Tuple, Union

from mindspore import Tensor, nn, ops

from ..utils.errors import UserError
from .layers import DropPath

NUM_FEATURE_MAPS = 5  # index i is the map at stride 2^(i+1)
FROZEN_STAGES = tuple(range(-1, NUM_FEATURE_MAPS))  # -1: nothing, 0: the stem, i: the stem and stages 1..i
POOL_TYPES = ("avg", "max", "avgmax", "")


def _is_int(value) -> bool:
    """An integer that is not a bool (``True`` is an int to Python, never a count or an index here)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def feature_take_indices(num_maps: int, indices: Union[None, int, Sequence[int]] = None,
                         what: str = "indices") -> Tuple[List[int], int]:
    """timm's index rule: ``None`` takes every map, an int ``n`` the last ``n``, a sequence those indices
    (negative ones count from the end). Returns (indices in range 0..num_maps-1, their maximum);
    ``what`` names the argument in the error: a ``TypeError`` for anything but an int or a sequence of
    ints (bools and floats included), a ``ValueError`` for indices out of range."""
    if indices is None:
        indices = num_maps
    if _is_int(indices):
        if not 0 < indices <= num_maps:
            raise UserError(f"{what}: the last n of {num_maps} feature maps needs 1 <= n <= {num_maps}, got {indices}")
        take = list(range(num_maps - indices, num_maps))
    else:
        try:
            items = None if isinstance(indices, (str, bytes)) else list(indices)
        except TypeError:
            items = None
        if items is None or not all(_is_int(i) for i in items):
            raise TypeError(f"{what} must be an int n (the last n maps) or a sequence of ints in 0..{num_maps - 1} "
                            f"(or -{num_maps}..-1), got {indices!r}")
        take = [int(i) + num_maps if i < 0 else int(i) for i in items]
        if not take or any(i not in range(num_maps) for i in take):
            raise UserError(f"{what} must be a non-empty subset of 0..{num_maps - 1} (or -{num_maps}..-1), "
                            f"got {tuple(items)}")
    return take, max(take)


def check_network_args(*, num_classes: int, in_channels: int, drop_rate: float, drop_path_rate: float,
                       features_only: bool) -> None:
    """The arguments every network takes, before any cell is built: ``num_classes`` an int >= 0 (0: no
    classifier), ``in_channels`` an int >= 1, the drop rates finite numbers in [0, 1), ``features_only``
    True or False. A wrong type is a one-line ``TypeError``, a value out of range a ``ValueError``."""
    for name, value, low in (("num_classes", num_classes, 0), ("in_channels", in_channels, 1)):
        if not _is_int(value):
            raise TypeError(f"{name} must be an int >= {low}, got {value!r}")
        if value < low:
            raise UserError(f"{name} must be an int >= {low}" + (" (0: no classifier)" if low == 0 else "")
                            + f", got {value}")
    for name, value in (("drop_rate", drop_rate), ("drop_path_rate", drop_path_rate)):
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            raise TypeError(f"{name} must be a number in [0, 1), got {value!r}")
        if not 0 <= value < 1:  # NaN fails too
            raise UserError(f"{name} must be a number in [0, 1), got {value}")
    if not isinstance(features_only, bool):
        raise TypeError(f"features_only must be True or False, got {features_only!r}")


def check_pool_type(pool_type: str) -> None:
    if pool_type not in POOL_TYPES:
        raise UserError(f"global_pool must be one of 'avg', 'max', 'avgmax' or '', got '{pool_type}'")


def check_training_switches(frozen_stages: int, *, norm_eval: bool) -> None:
    """mmpretrain's ``frozen_stages`` (one of FROZEN_STAGES) and ``norm_eval`` (True or False); anything else
    is a one-line ValueError."""
    if isinstance(frozen_stages, bool) or not isinstance(frozen_stages, numbers.Integral) or \
            frozen_stages not in FROZEN_STAGES:
        raise UserError(f"frozen_stages must be -1 (nothing frozen), 0 (the stem) or i in 1..{FROZEN_STAGES[-1]} "
                        f"(the stem and stages 1..i), got {frozen_stages!r}")
    if not isinstance(norm_eval, bool):
        raise UserError(f"norm_eval must be True or False, got {norm_eval!r}")


def pin_batchnorm_eval(cell: nn.Cell) -> None:
    """Make every BatchNorm of ``cell`` normalise with its running statistics and never update them,
    whatever training flag the model or a wrapper (``TrainOneStepCell.set_train``) sets:
    ``use_batch_statistics=False`` wins over the flag, in PyNative and Graph mode."""
    for _, sub in cell.cells_and_names():
        if isinstance(sub, nn.BatchNorm2d):
            sub.use_batch_statistics = False


def freeze(cell: nn.Cell) -> None:
    """Stop ``cell`` from training: its parameters leave ``trainable_params()`` (requires_grad False) and
    its BatchNorms stay in eval mode (``pin_batchnorm_eval``)."""
    for param in cell.get_parameters():
        param.requires_grad = False
    pin_batchnorm_eval(cell)


class FeatureInfo(list):
    """timm's ``FeatureInfo(info, out_indices)``: the dicts of every feature map a network has (``info``,
    the list's items: ``len``, indexing and iteration cover all of them), and the maps it returns
    (``out_indices``: a sequence, negative ones counting from the end, or an int ``n``, the last ``n``).

    ``get(key, idx)`` and its accessors ``channels``, ``reduction``, ``module_name`` give ``key`` of the
    ``out_indices`` maps (``idx=None``), of map ``idx`` (an int) or of the maps listed in ``idx``;
    ``get_dicts(keys, idx)`` the same for whole dicts (or their ``keys``). Each dict keeps timm's keys
    (``num_chs``, ``reduction``, ``module``, ``index``: its position) and mindcv's (``chs``, ``name``),
    so mindcv's ``FeatureExtractWrapper`` reads it too; ``module`` names a cell of the network whose
    output the map is. The given dicts are copied, not changed.
    """

    def __init__(self, info: Sequence[dict], out_indices: Union[int, Sequence[int]]) -> None:
        dicts, previous = [], 1
        for i, entry in enumerate(info):
            if entry.get("num_chs", 0) <= 0 or entry.get("reduction", 0) < previous or "module" not in entry:
                raise ValueError(f"feature_info[{i}] needs num_chs > 0, a reduction >= the previous map's "
                                 f"({previous}) and a module, got {entry}")
            previous = entry["reduction"]
            dicts.append(dict(entry, index=entry.get("index", i), chs=entry["num_chs"], name=entry["module"]))
        super().__init__(dicts)
        self.out_indices = tuple(feature_take_indices(len(dicts), out_indices, "out_indices")[0])

    def from_other(self, out_indices: Union[int, Sequence[int]]) -> "FeatureInfo":
        """The same maps, other ``out_indices`` (timm)."""
        return FeatureInfo(self, out_indices)

    def get(self, key: str, idx: Union[None, int, Sequence[int]] = None):
        """``key`` of the ``out_indices`` maps (``idx=None``), of map ``idx``, or of the maps listed in ``idx``."""
        if idx is None:
            return [self[i][key] for i in self.out_indices]
        if isinstance(idx, int):
            return self[idx][key]
        return [self[i][key] for i in idx]

    def get_dicts(self, keys: Optional[Sequence[str]] = None, idx: Union[None, int, Sequence[int]] = None):
        """The dicts (or only their ``keys``) of the ``out_indices`` maps, of map ``idx`` or of the maps in ``idx``."""
        def pick(i: int) -> dict:
            return self[i] if keys is None else {k: self[i][k] for k in keys}

        if isinstance(idx, int):
            return pick(idx)
        return [pick(i) for i in (self.out_indices if idx is None else idx)]

    def channels(self, idx: Union[None, int, Sequence[int]] = None):
        return self.get("num_chs", idx)

    def reduction(self, idx: Union[None, int, Sequence[int]] = None):
        return self.get("reduction", idx)

    def module_name(self, idx: Union[None, int, Sequence[int]] = None):
        return self.get("module", idx)


class GlobalPool(nn.Cell):
    """Global pooling of the classifier head: (N, C, H, W) -> (N, C), or (N, C, 1, 1) with ``keep_dims``.

    ``"avg"`` mean, ``"max"`` maximum, ``"avgmax"`` the mean of both (timm's), ``""`` no pooling: the
    map passes unchanged (only without a classifier).
    """

    def __init__(self, pool_type: str = "avg", *, keep_dims: bool = False) -> None:
        super().__init__()
        check_pool_type(pool_type)
        self.pool_type, self.keep_dims = pool_type, keep_dims

    def construct(self, x: Tensor) -> Tensor:
        if self.pool_type == "avg":
            return ops.mean(x, (2, 3), keep_dims=self.keep_dims)
        if self.pool_type == "max":
            return ops.amax(x, (2, 3), keepdims=self.keep_dims)
        if self.pool_type == "avgmax":
            return 0.5 * (ops.mean(x, (2, 3), keep_dims=self.keep_dims) + ops.amax(x, (2, 3), keepdims=self.keep_dims))
        return x

    def extend_repr(self) -> str:
        return f"pool_type='{self.pool_type}'"


class FeatureClassifier(nn.Cell):
    """Base of ``Res2Net`` and ``Res2NetDLA``: five feature maps at strides 2..32, then a pooled classifier.

    A subclass calls ``__init__`` first (it checks the arguments every network takes and keeps them as
    ``in_channels``, ``num_classes``, ``drop_rate``, ``drop_path_rate``), builds its cells from those
    attributes, then calls ``_set_up_head``; it gives ``forward_stem`` (image -> map 0),
    ``stage_names`` (the cells giving maps 1..4, each from the previous one; ``enter_stages`` may
    transform map 0 first) and ``make_classifier``. ``construct`` returns the ``out_indices`` maps as a
    list when ``features_only``, else the head's output: logits (N, num_classes), pooled features
    (N, num_features) without a classifier, or the final map (N, num_features, H/32, W/32) when
    ``global_pool=""`` as well.
    """

    stage_names: Tuple[str, ...] = ()

    def __init__(self, *, in_channels: int, num_classes: int, features_only: bool,
                 out_indices: Union[None, int, Sequence[int]], global_pool: str = "avg", drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0) -> None:
        super().__init__()
        check_network_args(num_classes=num_classes, in_channels=in_channels, drop_rate=drop_rate,
                           drop_path_rate=drop_path_rate, features_only=features_only)
        if out_indices is not None and not features_only:
            raise UserError(f"out_indices={out_indices!r} needs features_only=True (it picks the feature maps "
                            "a features_only model returns)")
        # timm's rule: None is every map, negative indices count from the end, an int n is the last n maps
        out_indices = feature_take_indices(NUM_FEATURE_MAPS, out_indices, "out_indices")[0]
        self.in_channels, self.features_only, self.out_indices = int(in_channels), features_only, tuple(out_indices)
        self.drop_rate, self.drop_path_rate = float(drop_rate), float(drop_path_rate)  # numpy's as Python's
        self.grad_checkpointing = False
        self.num_classes = 0 if features_only else int(num_classes)
        self._check_head(self.num_classes, global_pool)
        self.global_pool = global_pool

    @staticmethod
    def _check_head(num_classes: int, global_pool: str) -> None:
        check_pool_type(global_pool)  # before any cell is built
        if global_pool == "" and num_classes > 0:
            raise UserError("global_pool='' (no pooling) needs num_classes=0: the classifier takes pooled features")

    def _set_up_head(self, feature_maps: Sequence[Tuple[int, int, str]], num_features: int) -> None:
        """Feature info from the five maps' (channels, reduction, module) (its ``out_indices`` the model's
        when ``features_only``, else all five), the pool, dropout (``drop_rate``) and classifier. A ``features_only``
        model's ``out_channels`` are its outputs' channels, as mindcv's ``FeatureExtractWrapper`` gives them."""
        self.feature_info = FeatureInfo([dict(num_chs=c, reduction=r, module=m) for c, r, m in feature_maps],
                                        self.out_indices if self.features_only else NUM_FEATURE_MAPS)
        if self.features_only:
            self.out_channels = self.feature_info.channels()
        self.num_features = self.head_hidden_size = num_features
        self.pool = GlobalPool(self.global_pool, keep_dims=self.pool_keeps_dims)
        self.head_drop = nn.Dropout(p=self.drop_rate) if self.drop_rate > 0 else None
        self.fc = self.make_classifier(self.num_classes) if self.num_classes > 0 else None

    pool_keeps_dims = False  # the DLA's 1x1-convolution classifier takes (N, C, 1, 1)

    def make_classifier(self, num_classes: int) -> nn.Cell:
        raise NotImplementedError

    def _apply_training_switches(self, stem: Sequence[nn.Cell], *, frozen_stages: int, norm_eval: bool) -> None:
        """Freeze the ``stem`` cells and stages 1..``frozen_stages`` (none for -1) and, with ``norm_eval``,
        pin every BatchNorm in eval mode (see ``check_training_switches``)."""
        if frozen_stages >= 0:
            for cell in list(stem) + [getattr(self, name) for name in self.stage_names[:frozen_stages]]:
                freeze(cell)
        if norm_eval:
            pin_batchnorm_eval(self)

    def forward_stem(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def enter_stages(self, x: Tensor) -> Tensor:
        return x

    def get_classifier(self) -> Optional[nn.Cell]:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """A freshly initialised classifier of ``num_classes`` outputs (0: none) and, if given, another
        ``global_pool``; ``reset_classifier(0, "")`` makes the model return the final feature map."""
        pool = self.global_pool if global_pool is None else global_pool
        self._check_head(num_classes, pool)
        self.num_classes, self.global_pool = num_classes, pool
        self.pool = GlobalPool(pool, keep_dims=self.pool_keeps_dims)
        self.fc = self.make_classifier(num_classes) if num_classes > 0 else None
        self._forget_compiled_graph()

    def _forget_compiled_graph(self) -> None:
        """After the cells changed, make Graph mode compile anew: MindSpore 2.10 keys its compiled graphs
        by the cell's creation time and id, not its contents, and would run the old graph."""
        object.__setattr__(self, "_create_time", max(time.time_ns(), self.create_time + 1))

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """timm's switch for gradient checkpointing: with ``enable`` every block (``Bottle2neck``) runs
        under ``mindspore.recompute``, so the backward pass recomputes its activations instead of keeping
        them (less memory per train step, more time; the loss and gradients stay the same). ``False``
        turns it off. Set it before the first compiled step: a step compiled already keeps its graph.

        Refused with stochastic depth (``drop_path_rate > 0``): MindSpore's dropout draws a new mask when
        a block is recomputed, so the gradients would be those of another mask than the loss's.
        """
        if not isinstance(enable, bool):
            raise TypeError(f"set_grad_checkpointing: enable must be True or False, got {enable!r}")
        if enable and any(isinstance(cell, DropPath) and cell.drop_prob > 0 for _, cell in self.cells_and_names()):
            raise UserError("set_grad_checkpointing: not with drop_path_rate > 0: a recomputed block draws a new "
                            "drop-path mask, so its gradients would not match the loss; build the model with "
                            "drop_path_rate=0 or train without gradient checkpointing")
        for _, cell in self.cells_and_names():  # the network and the cells that call blocks (DLA trees)
            if "grad_checkpointing" in vars(cell):
                cell.grad_checkpointing = enable
        self._forget_compiled_graph()

    def run_stage(self, name: str, x: Tensor) -> Tensor:
        """Stage ``name`` on ``x``; a subclass whose stages are sequences of blocks recomputes each block
        under ``grad_checkpointing`` here."""
        return getattr(self, name)(x)

    def feature_maps(self, x: Tensor, num_stages: int = NUM_FEATURE_MAPS - 1) -> Tuple[Tensor, ...]:
        """Map 0 and the maps of the first ``num_stages`` stages: by default all five, at strides 2, 4, 8,
        16, 32 (compiles in Graph mode)."""
        x = self.forward_stem(x)
        maps = (x,)
        if num_stages:
            x = self.enter_stages(x)
            for name in self.stage_names[:num_stages]:
                x = self.run_stage(name, x)
                maps += (x,)
        return maps

    def forward_intermediates(self, x: Tensor, indices: Union[None, int, Sequence[int]] = None, *, norm: bool = False,
                              stop_early: bool = False, output_fmt: str = "NCHW",
                              intermediates_only: bool = False):
        """timm's contract: ``(final map, [maps at indices])``, or just the list with ``intermediates_only``.

        ``indices``: None (all five), n (the last n) or a list (see ``feature_take_indices``); the maps
        come in network order. ``stop_early`` skips the stages after the last map asked for (the final
        map is then that stage's output). ``norm`` is accepted and has nothing to do: these networks
        have no final norm layer. Only ``output_fmt="NCHW"``.
        """
        if output_fmt != "NCHW":
            raise UserError(f"output_fmt must be 'NCHW' (these are convolutional maps), got '{output_fmt}'")
        take, max_index = feature_take_indices(NUM_FEATURE_MAPS, indices)
        maps = self.feature_maps(x, max_index if stop_early else NUM_FEATURE_MAPS - 1)
        intermediates = [m for i, m in enumerate(maps) if i in take]
        return intermediates if intermediates_only else (maps[-1], intermediates)

    def prune_intermediate_layers(self, indices: Union[None, int, Sequence[int]] = 1, *, prune_norm: bool = False,
                                  prune_head: bool = True) -> List[int]:
        """Replace the stages after the last map of ``indices`` by identities and, with ``prune_head``,
        remove the pool and classifier (``reset_classifier(0, "")``); returns the kept indices (timm)."""
        take, max_index = feature_take_indices(NUM_FEATURE_MAPS, indices)
        for name in self.stage_names[max_index:]:
            setattr(self, name, nn.Identity())
        if prune_head:
            self.reset_classifier(0, "")
        self._forget_compiled_graph()
        return take

    def forward_features(self, x: Tensor) -> Tensor:
        """(N, C, H, W) image -> (N, num_features, H / 32, W / 32) final feature map."""
        return self.feature_maps(x)[-1]

    def forward_head(self, x: Tensor, *, pre_logits: bool = False) -> Tensor:
        """Final map -> logits (N, num_classes), or the pooled features (N, num_features) with
        ``pre_logits`` or without a classifier (the map itself when ``global_pool=""``)."""
        x = self.pool(x)
        if self.head_drop is not None:
            x = self.head_drop(x)
        if pre_logits or self.fc is None:
            return ops.flatten(x) if self.pool_keeps_dims and self.global_pool else x
        return self.classify(x)

    def classify(self, x: Tensor) -> Tensor:
        return self.fc(x)

    def construct(self, x: Tensor):
        if self.features_only:  # a list, as timm's features_only models return (also from a Graph-mode call)
            maps = self.feature_maps(x)
            selected = []
            for i in self.out_indices:
                selected.append(maps[i])
            return selected
        return self.forward_head(self.forward_features(x))
