"""What every network of the zoo shares: ``features_only`` / ``out_indices`` and the classifier API."""
from typing import Optional, Sequence

from mindspore import Tensor, nn

NUM_FEATURE_MAPS = 5  # index i is the map at stride 2^(i+1)


class FeatureClassifier(nn.Cell):
    """Base of ``Res2Net`` and ``Res2NetDLA``; subclasses give ``forward_intermediates`` (the five maps at
    strides 2..32), ``forward_features`` and ``forward_head``, and set ``self.fc``.

    ``construct`` returns the ``out_indices`` maps as a tuple when ``features_only``, else logits.
    """

    def __init__(self, in_channels: int, num_classes: int, features_only: bool, out_indices: Sequence[int]) -> None:
        super().__init__()
        out_indices = tuple(int(i) for i in out_indices)
        if features_only and (not out_indices or any(i not in range(NUM_FEATURE_MAPS) for i in out_indices)):
            raise ValueError(f"out_indices must be a non-empty subset of 0..{NUM_FEATURE_MAPS - 1}, got {out_indices}")
        self.in_channels, self.features_only, self.out_indices = in_channels, features_only, out_indices
        self.num_classes = 0 if features_only else num_classes

    def get_classifier(self) -> Optional[nn.Cell]:
        return self.fc

    def construct(self, x: Tensor):
        if self.features_only:
            feats = self.forward_intermediates(x)
            selected = ()
            for i in self.out_indices:
                selected += (feats[i],)
            return selected
        return self.forward_head(self.forward_features(x))
