"""The LIF and PRF modules reach their fused kernels through ``backend`` (interpreter on CPU)."""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton is imported anywhere

import torch  # noqa: E402

from spikeforge.golden.lif import DecoupledResetLIF, LIF  # noqa: E402
from spikeforge.golden.prf import PRF  # noqa: E402


def test_prf_triton_backend_matches_torch(seed):
    torch.manual_seed(seed)
    neuron = PRF(5)
    x = torch.randn(24, 2, 5) * 30
    spikes, membrane = neuron(x, return_membrane=True)
    neuron.backend = "triton"
    fast_spikes, fast_membrane = neuron(x, return_membrane=True)
    torch.testing.assert_close(fast_membrane, membrane, rtol=1e-4, atol=1e-4)
    decided = (membrane - neuron.v_threshold).abs() > 1e-3
    assert torch.equal(fast_spikes[decided], spikes[decided])


def test_lif_triton_backend_matches_torch(seed):
    torch.manual_seed(seed)
    x = torch.rand(40, 3, 4) * 1.5
    for cls in (LIF, DecoupledResetLIF):
        reference = cls()(x)
        assert torch.equal(cls(backend="triton")(x), reference), cls.__name__
