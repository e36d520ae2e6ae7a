"""Pick oneDNN's AVX2 kernels before MindSpore loads (CPU only; GPU/Ascend kernels ignore it).

On AVX-512 CPUs oneDNN may select a reference 3x3 convolution that is 50-90x slower than its
AVX2 kernel. ``ONEDNN_MAX_CPU_ISA=AVX2`` caps the ISA; a value the user set always wins.
"""
import os
import sys
import warnings

ONEDNN_VARIABLE = "ONEDNN_MAX_CPU_ISA"
ONEDNN_DEFAULT = "AVX2"


def set_onednn_isa() -> None:
    """Set ``ONEDNN_MAX_CPU_ISA=AVX2`` unless already set; warn if MindSpore was imported first."""
    if ONEDNN_VARIABLE in os.environ:
        return
    os.environ[ONEDNN_VARIABLE] = ONEDNN_DEFAULT
    if "mindspore" in sys.modules:
        warnings.warn(
            f"mindspore was imported before mindcv_res2net, so {ONEDNN_VARIABLE}={ONEDNN_DEFAULT} "
            "may come too late for oneDNN's CPU kernels; import mindcv_res2net first or export "
            f"{ONEDNN_VARIABLE}={ONEDNN_DEFAULT} before starting Python",
            RuntimeWarning,
            stacklevel=3,
        )
