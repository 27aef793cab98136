"""What `slimops info` reports."""

import torch

from . import _C


def registered_ops() -> list[str]:
    """Names of the ops the extension registered in the slimops namespace."""
    prefix = "slimops::"
    return sorted(
        name[len(prefix):]
        for name in torch._C._dispatch_get_all_op_names()
        if name.startswith(prefix)
    )


def collect_info() -> dict:
    build = _C.build_info()
    return {
        "slimops": build["version"],
        "torch (runtime)": torch.__version__,
        "torch (built against)": build["torch_version"],
        "cuda kernels built": build["cuda"],
        "cuda archs": build["cuda_archs"] or "-",
        "cuda compiler": build["cuda_version"] or "-",
        "cuda device": torch.cuda.get_device_name() if torch.cuda.is_available() else "-",
        "cpu isa available": ", ".join(_C.available_cpu_isas()),
        "cpu isa selected": _C.selected_cpu_isa(),
        "cpu threads": torch.get_num_threads(),
        "ops": ", ".join(registered_ops()),
    }
