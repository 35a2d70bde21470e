"""Surrogate gradients for the Heaviside step ``Θ(x) = 1 if x >= 0 else 0``.

Each surrogate is a :class:`torch.autograd.Function` (forward: the exact step, backward: a
smooth stand-in for its derivative) wrapped in a small ``nn.Module`` that holds the shape
parameter, as in SpikingJelly, so neurons take ``surrogate_function=ATan()`` and users can
switch over without surprises.
"""

import math

import torch
from torch import nn

__all__ = ["heaviside", "ATan", "Sigmoid", "PiecewiseQuadratic", "SURROGATES", "get_surrogate"]


def heaviside(x: torch.Tensor) -> torch.Tensor:
    """Θ(x) with Θ(0) = 1, the convention of every neuron in this project."""
    return (x >= 0).to(x.dtype)


class _ATanFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha):
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return heaviside(x)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        alpha = ctx.alpha
        grad = alpha / 2 / (1 + (math.pi / 2 * alpha * x).square())
        return grad_output * grad, None


class _SigmoidFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha):
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return heaviside(x)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        sg = torch.sigmoid(ctx.alpha * x)
        return grad_output * ctx.alpha * sg * (1 - sg), None


class _PiecewiseQuadraticFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha):
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return heaviside(x)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        alpha = ctx.alpha
        grad = (alpha - alpha * alpha * x.abs()).clamp(min=0)
        return grad_output * grad, None


class _Surrogate(nn.Module):
    _function: type[torch.autograd.Function]

    def __init__(self, alpha: float):
        super().__init__()
        alpha = float(alpha)
        if not alpha > 0:
            raise ValueError(f"surrogate alpha must be > 0, got {alpha}")
        self.alpha = alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._function.apply(x, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class ATan(_Surrogate):
    """Forward Θ(x); backward ``α / (2·(1 + (π·α·x/2)²))`` (default α = 2)."""

    _function = _ATanFunction

    def __init__(self, alpha: float = 2.0):
        super().__init__(alpha)


class Sigmoid(_Surrogate):
    """Forward Θ(x); backward ``α·σ(αx)·(1 − σ(αx))`` (default α = 4)."""

    _function = _SigmoidFunction

    def __init__(self, alpha: float = 4.0):
        super().__init__(alpha)


class PiecewiseQuadratic(_Surrogate):
    """Forward Θ(x); backward ``max(0, α − α²·|x|)`` (default α = 1)."""

    _function = _PiecewiseQuadraticFunction

    def __init__(self, alpha: float = 1.0):
        super().__init__(alpha)


SURROGATES = {"atan": ATan, "sigmoid": Sigmoid, "piecewise_quadratic": PiecewiseQuadratic}


def get_surrogate(name: str, **kwargs) -> _Surrogate:
    """Build a surrogate by name (``atan``, ``sigmoid``, ``piecewise_quadratic``)."""
    try:
        cls = SURROGATES[name]
    except KeyError:
        raise ValueError(f"unknown surrogate {name!r}; choose one of {sorted(SURROGATES)}") from None
    return cls(**kwargs)
