"""Supervised dictionaries recover planted attribute vectors (metrics.md §3)."""

from __future__ import annotations

import torch

from saebench.supervised import fit_lstsq_dictionary, fit_mean_dictionary

SIZES = {"io": 12, "s": 12, "pos": 2}


def planted(n: int = 20000, d: int = 32, noise: float = 0.05, seed: int = 0):
    """a = μ + Σ_i u_{i, v_i} + noise, with per-attribute centred u and uniform labels."""
    g = torch.Generator().manual_seed(seed)
    mu_D = torch.randn(d, generator=g)
    feats = {a: torch.randn(v, d, generator=g) for a, v in SIZES.items()}
    feats = {a: f - f.mean(0) for a, f in feats.items()}
    labels = {a: torch.randint(v, (n,), generator=g) for a, v in SIZES.items()}
    acts_ND = mu_D + sum(feats[a][labels[a]] for a in SIZES)
    return acts_ND + noise * torch.randn(n, d, generator=g), labels, feats, mu_D


def test_mean_dictionary_recovers_planted_features():
    acts_ND, labels, feats, mu_D = planted()
    d = fit_mean_dictionary(acts_ND, labels, SIZES)
    assert d.present_F.all()
    assert (d.bias_D - mu_D).norm() < 0.1  # labels are only empirically balanced
    for attr, true_VD in feats.items():
        got_VD = d.attribute_features(attr)
        cos_V = torch.nn.functional.cosine_similarity(got_VD, true_VD, dim=1)
        assert cos_V.min() > 0.99, attr
        rel = (got_VD - true_VD).norm() / true_VD.norm()
        assert rel < 0.06, (attr, rel)  # independent labels: other attributes average out


def test_lstsq_dictionary_recovers_planted_features_up_to_attribute_offsets():
    acts_ND, labels, feats, _ = planted()
    d = fit_lstsq_dictionary(acts_ND, labels, SIZES)
    for attr, true_VD in feats.items():
        got_VD = d.attribute_features(attr)
        got_VD = got_VD - got_VD.mean(0)  # lstsq pins each block only up to a shared shift
        assert (got_VD - true_VD).norm() / true_VD.norm() < 0.01, attr


def test_reconstructions_match_noise_level_and_lstsq_is_no_worse_than_mean():
    acts_ND, labels, _, _ = planted(noise=0.05)
    errors = {}
    for fit in (fit_mean_dictionary, fit_lstsq_dictionary):
        d = fit(acts_ND, labels, SIZES)
        recon_ND = d.decode(d.encode(acts_ND, labels))
        errors[d.kind] = (acts_ND - recon_ND).pow(2).sum(1).mean().item()
    # residual ≈ noise variance · d = 0.0025 · 32 = 0.08
    assert errors["lstsq"] < 0.085
    assert errors["lstsq"] <= errors["mean"] + 1e-6
    assert errors["mean"] < 0.2


def test_supervised_edit_moves_exactly_one_feature():
    acts_ND, labels, feats, _ = planted(noise=0.0)
    d = fit_mean_dictionary(acts_ND, labels, SIZES)
    old_N = labels["io"]
    new_N = (old_N + 1) % SIZES["io"]
    shift_ND = d.edit(acts_ND, "io", old_N, new_N) - acts_ND
    expected_ND = feats["io"][new_N] - feats["io"][old_N]
    rel_N = (shift_ND - expected_ND).norm(dim=1) / expected_ND.norm(dim=1)
    assert rel_N.max() < 0.1


def test_values_absent_from_the_fit_data_have_no_feature():
    acts_ND, labels, _, _ = planted(n=500)
    labels = dict(labels, io=labels["io"] % 5)  # values 5..11 never occur
    for fit in (fit_mean_dictionary, fit_lstsq_dictionary):
        d = fit(acts_ND, labels, SIZES)
        present = d.present_F[: SIZES["io"]]
        assert present[:5].all() and not present[5:].any()
        assert (d.attribute_features("io")[5:] == 0).all()
