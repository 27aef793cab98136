import pytest
import torch

import slimops

HAS_CUDA = torch.cuda.is_available() and slimops._C.build_info()["cuda"]
requires_cuda = pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device visible, or slimops built without CUDA")
# The Hopper kernels (wgmma, sm_90a code) run on compute capability 9.x only.
IS_HOPPER = HAS_CUDA and torch.cuda.get_device_capability()[0] == 9
requires_hopper = pytest.mark.skipif(not IS_HOPPER, reason="the wgmma kernels need a compute capability 9.x GPU")

# Relative-error bounds of design.md, by activation dtype.
TOL = {torch.float32: 1e-4, torch.float16: 5e-3, torch.bfloat16: 1e-2}


# The (device, activation dtype) pairs the opcheck tests run: every dtype
# both backends share with torch's own checks, CUDA ones where it is built.
OPCHECK_DEVICE_DTYPES = [
    ("cpu", torch.float32),
    ("cpu", torch.bfloat16),
    pytest.param("cuda", torch.float16, marks=requires_cuda),
    pytest.param("cuda", torch.bfloat16, marks=requires_cuda),
]


def devices():
    return ["cpu", pytest.param("cuda", marks=requires_cuda)]


def dtypes_for(device):
    return [torch.float32, torch.bfloat16, torch.float16] if device == "cpu" else [torch.float16, torch.bfloat16]


@pytest.fixture
def gen():
    # Fresh inputs each test, yet reproducible when a failure is reported.
    return torch.Generator().manual_seed(torch.seed() % (2**31))


@pytest.fixture(params=[*slimops._C.available_cpu_isas(), "auto"])
def cpu_isa(request):
    """Runs a test once per CPU path this machine has (forced), and once with
    the automatic choice, which may mix paths per case; restores the choice after."""
    before, forced = slimops._C.selected_cpu_isa(), slimops._C.cpu_isa_forced()
    if request.param == "auto":
        slimops._C.reset_cpu_isa()
    else:
        slimops._C.set_cpu_isa(request.param)
    yield request.param
    if forced:
        slimops._C.set_cpu_isa(before)
    else:
        slimops._C.reset_cpu_isa()
