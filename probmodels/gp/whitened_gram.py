"""``A A^T`` and ``A y`` for ``A = L^{-1} K(Z, X)`` with a gradient that never forms ``dA``.

A Gaussian-likelihood SVGP step needs a batch only through
``Phi = A A^T`` (``m x m``) and ``psi = A y`` (``m``). Autograd through
``solve_triangular`` and ``A @ A.T`` would spend three ``m^2 b`` products
and a triangular solve on the backward pass; :func:`whitened_gram` uses

* ``dK = (L^{-T} (G + G^T) L^{-1}) K + (L^{-T} g) y^T`` (one ``m^2 b`` product),
* ``dL = -tril(L^{-T} ((G + G^T) Phi + g psi^T))`` (``m x m`` work only),

for incoming gradients ``G`` of ``Phi`` and ``g`` of ``psi``. The forward
pass still forms ``A`` by a triangular solve and ``Phi`` as its Gram matrix,
so ``Phi`` stays positive semi-definite in floating point however close the
inducing inputs are.
"""

from __future__ import annotations

import torch

from .cpu_blas import gram, solve_lower

__all__ = ["whitened_gram"]


class _WhitenedGram(torch.autograd.Function):
    @staticmethod
    def forward(ctx, chol: torch.Tensor, cross: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        A = solve_lower(chol, cross)
        outer, cross_y = gram(A), A @ y
        ctx.save_for_backward(chol, cross, y, A, outer, cross_y)
        return outer, cross_y

    @staticmethod
    def backward(ctx, grad_outer: torch.Tensor | None, grad_cross_y: torch.Tensor | None):
        chol, cross, y, A, outer, cross_y = ctx.saved_tensors
        m = chol.shape[-1]
        sym = grad_outer + grad_outer.mT if grad_outer is not None else cross.new_zeros(m, m)
        g = grad_cross_y if grad_cross_y is not None else cross.new_zeros(m)
        grad_chol = grad_cross = grad_y = None
        if ctx.needs_input_grad[1]:
            # L^{-T} sym L^{-1}, symmetric: two triangular solves on m x m.
            middle = solve_lower(chol, solve_lower(chol, sym, transpose=True).mT, transpose=True)
            grad_cross = middle @ cross + torch.outer(solve_lower(chol, g.unsqueeze(-1), transpose=True).squeeze(-1), y)
        if ctx.needs_input_grad[0]:
            grad_chol = -solve_lower(chol, sym @ outer + torch.outer(g, cross_y), transpose=True).tril()
        if ctx.needs_input_grad[2]:
            grad_y = A.mT @ g
        return grad_chol, grad_cross, grad_y


def whitened_gram(chol: torch.Tensor, cross: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(A A^T, A y)`` with ``A = chol^{-1} cross``.

    Parameters
    ----------
    chol
        Lower Cholesky factor ``L`` of ``K(Z, Z)``, ``(m, m)``.
    cross
        ``K(Z, X)``, ``(m, b)``.
    y
        Targets ``(b,)``.

    Returns
    -------
    outer, cross_y
        ``(m, m)`` (exactly symmetric, positive semi-definite) and ``(m,)``,
        differentiable in all three inputs.
    """
    return _WhitenedGram.apply(chol, cross, y)
