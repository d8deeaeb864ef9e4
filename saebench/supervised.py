"""Supervised feature dictionaries (metrics.md §3), fitted from activations and attribute labels.

With ā the mean activation over the fitting prompts and attributes i with values v:

- **Mean dictionary**: u_{i,v} = mean{a(p) : a_i(p) = v} − ā, and â(p) = ā + Σ_i u_{i, a_i(p)}.
- **Least-squares dictionary**: U* = argmin_U ‖A − C U‖²_F, C the one-hot design matrix of
  attribute values plus a bias column (min-norm solution, ``torch.linalg.lstsq``); the bias row
  plays the role of ā.
- **Supervised edit** of attribute i from v to v′: a′ = a − u_{i,v} + u_{i,v′}.

Both are dictionaries in saebench's sense: features are rows of ``features_FD`` (attributes in
order, each value in order), codes are the one-hot labels (exactly one active feature per
attribute), so they go through the same scoring path as an SAE. Values absent from the
fitting prompts have no feature (``present_F`` is False; their rows are zero).

>>> labels = {"x": torch.tensor([0, 0, 1, 1])}
>>> acts_ND = torch.tensor([[1.0, 0], [1.0, 0], [0, 3.0], [0, 3.0]])
>>> d = fit_mean_dictionary(acts_ND, labels, {"x": 2})
>>> d.bias_D.tolist(), d.features_FD.tolist()
([0.5, 1.5], [[0.5, -1.5], [-0.5, 1.5]])
>>> torch.allclose(d.decode(d.encode(acts_ND, labels)), acts_ND)
True
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(eq=False)
class SupervisedDictionary:
    """Features u_{i,v} (rows of ``features_FD``) and a bias (ā for the mean dictionary)."""

    kind: str
    """``"mean"`` or ``"lstsq"``."""
    features_FD: Tensor
    bias_D: Tensor
    attribute_sizes: dict[str, int]
    """Number of values of each attribute, in feature order."""
    present_F: Tensor
    """Whether each value occurred in the fitting prompts (else its feature is zero)."""
    needs_labels = True

    @property
    def d_in(self) -> int:
        return self.features_FD.shape[1]

    @property
    def d_sae(self) -> int:
        return self.features_FD.shape[0]

    @property
    def W_dec_FD(self) -> Tensor:
        return self.features_FD

    @property
    def b_dec_D(self) -> Tensor:
        return self.bias_D

    def offset(self, attribute: str) -> int:
        """Index of the first feature of ``attribute``."""
        names = list(self.attribute_sizes)
        return sum(self.attribute_sizes[a] for a in names[: names.index(attribute)])

    def feature_index(self, attribute: str, values_N: Tensor) -> Tensor:
        """Feature indices of ``attribute = values_N``."""
        return self.offset(attribute) + values_N

    def attribute_features(self, attribute: str) -> Tensor:
        """Features u_{attribute, v} for every value v, [V, D]."""
        start = self.offset(attribute)
        return self.features_FD[start : start + self.attribute_sizes[attribute]]

    def encode(self, x_ND: Tensor, labels: dict[str, Tensor]) -> Tensor:
        """One-hot codes [N, F] of the prompts' attribute values (``x_ND`` only sets shape)."""
        codes_NF = torch.zeros(x_ND.shape[0], self.d_sae, device=x_ND.device, dtype=x_ND.dtype)
        rows = torch.arange(x_ND.shape[0], device=x_ND.device)
        for attribute in self.attribute_sizes:
            codes_NF[rows, self.feature_index(attribute, labels[attribute].to(x_ND.device))] = 1
        return codes_NF

    def decode(self, codes_NF: Tensor) -> Tensor:
        """â = bias + Σ_j f_j u_j."""
        return codes_NF @ self.features_FD + self.bias_D

    def active(self, x_ND: Tensor, labels: dict[str, Tensor]) -> Tensor:
        return self.encode(x_ND, labels) > 0

    def edit(self, x_ND: Tensor, attribute: str, old_N: Tensor, new_N: Tensor) -> Tensor:
        """Supervised edit a′ = a − u_{i,v} + u_{i,v′}."""
        feats_VD = self.attribute_features(attribute)
        return x_ND - feats_VD[old_N] + feats_VD[new_N]

    def to(self, device) -> SupervisedDictionary:
        return SupervisedDictionary(
            self.kind,
            self.features_FD.to(device),
            self.bias_D.to(device),
            dict(self.attribute_sizes),
            self.present_F.to(device),
        )


def _design_matrix(labels: dict[str, Tensor], sizes: dict[str, int]) -> Tensor:
    """One-hot design matrix C [N, F] of attribute values, attributes in ``sizes`` order."""
    blocks = [torch.nn.functional.one_hot(labels[a].long().cpu(), sizes[a]).double() for a in sizes]
    return torch.cat(blocks, dim=1)


def fit_mean_dictionary(
    acts_ND: Tensor, labels: dict[str, Tensor], sizes: dict[str, int]
) -> SupervisedDictionary:
    """u_{i,v} = mean{a : a_i = v} − ā, computed in float64."""
    a_ND = acts_ND.detach().double().cpu()
    mean_D = a_ND.mean(0)
    C_NF = _design_matrix(labels, sizes)
    counts_F = C_NF.sum(0)
    sums_FD = C_NF.T @ a_ND
    present_F = counts_F > 0
    features_FD = torch.where(
        present_F[:, None], sums_FD / counts_F.clamp(min=1)[:, None] - mean_D, 0.0
    )
    return SupervisedDictionary(
        "mean", features_FD.to(acts_ND.dtype), mean_D.to(acts_ND.dtype), dict(sizes), present_F
    )


def fit_lstsq_dictionary(
    acts_ND: Tensor, labels: dict[str, Tensor], sizes: dict[str, int]
) -> SupervisedDictionary:
    """U* = argmin_U ‖A − [C 1] U‖²_F (min-norm; C's blocks and the bias are collinear)."""
    a_ND = acts_ND.detach().double().cpu()
    C_NF = _design_matrix(labels, sizes)
    design = torch.cat([C_NF, torch.ones(len(C_NF), 1, dtype=C_NF.dtype)], dim=1)
    solution = torch.linalg.lstsq(design, a_ND, driver="gelsd").solution
    present_F = C_NF.sum(0) > 0
    features_FD = torch.where(present_F[:, None], solution[:-1], 0.0)
    return SupervisedDictionary(
        "lstsq",
        features_FD.to(acts_ND.dtype),
        solution[-1].to(acts_ND.dtype),
        dict(sizes),
        present_F,
    )


FITTERS = {"mean": fit_mean_dictionary, "lstsq": fit_lstsq_dictionary}
