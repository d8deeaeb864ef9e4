"""Tests for the reference dictionaries (saebench_baselines.reference)."""

import pytest
import torch

from saebench.sae.formats import load_sae, save_saelens
from saebench_baselines.reference import pca_sae, random_sae


def correlated_acts(n_samples: int = 3000, d_in: int = 12, seed: int = 0) -> torch.Tensor:
    """Gaussian activations with a non-zero mean and a spread-out spectrum."""
    gen = torch.Generator().manual_seed(seed)
    mixing_DD = torch.randn(d_in, d_in, generator=gen) * torch.linspace(3.0, 0.1, d_in)[:, None]
    return torch.randn(n_samples, d_in, generator=gen) @ mixing_DD + 2.0


def test_pca_sae_reconstructs_exactly_with_all_components():
    acts_ND = correlated_acts()
    sae = pca_sae(acts_ND)
    assert sae.architecture == "standard" and sae.d_sae == 2 * 12
    recon_ND = sae.decode(sae.encode(acts_ND))
    assert (recon_ND - acts_ND).abs().max().item() < 1e-4 * acts_ND.abs().max().item()
    torch.testing.assert_close(sae.b_dec_D, acts_ND.mean(0))
    assert (sae.b_enc_F == 0).all()
    torch.testing.assert_close(sae.W_dec_FD, sae.W_enc_DF.T)


def test_pca_sae_with_fewer_components_keeps_the_top_variance():
    acts_ND = correlated_acts()
    n = 4
    sae = pca_sae(acts_ND, n_components=n)
    assert sae.d_sae == 2 * n
    centred_ND = (acts_ND - acts_ND.mean(0)).double()
    eigvals_D = torch.linalg.eigvalsh(centred_ND.T @ centred_ND).flip(0)
    expected_fvu = (eigvals_D[n:].sum() / eigvals_D.sum()).item()
    err = (acts_ND - sae.decode(sae.encode(acts_ND))).double().pow(2).sum()
    fvu = (err / centred_ND.pow(2).sum()).item()
    assert fvu == pytest.approx(expected_fvu, rel=1e-3)
    assert expected_fvu > 0.01  # the truncation matters
    # ± split: for every component at most one of its two latents is active
    codes_NF = sae.encode(acts_ND)
    both_active = (codes_NF[:, :n] > 0) & (codes_NF[:, n:] > 0)
    assert not both_active.any()
    # sign convention: the largest-magnitude entry of each component is positive
    V_Dn = sae.W_enc_DF[:, :n]
    assert (V_Dn.gather(0, V_Dn.abs().argmax(0, keepdim=True)) > 0).all()


def test_random_sae_latents_fire_on_the_requested_fraction():
    acts_ND = correlated_acts(n_samples=2000)
    sae = random_sae(12, 40, seed=0, acts_ND=acts_ND, fire_fraction=0.1)
    torch.testing.assert_close(sae.W_dec_FD.norm(dim=-1), torch.ones(40))
    assert torch.equal(sae.W_enc_DF, sae.W_dec_FD.T)
    torch.testing.assert_close(sae.b_dec_D, acts_ND.mean(0))
    fire_rate_F = sae.active(acts_ND).float().mean(0)
    assert (fire_rate_F - 0.1).abs().max().item() <= 1.5 / 2000
    # default: mean L0 ≈ 8
    default = random_sae(12, 40, seed=0, acts_ND=acts_ND)
    assert default.active(acts_ND).sum(-1).float().mean().item() == pytest.approx(8.0, abs=0.05)


def test_random_sae_without_data_has_zero_biases():
    sae = random_sae(6, 10, seed=1)
    assert (sae.b_enc_F == 0).all() and (sae.b_dec_D == 0).all()


def test_random_sae_same_seed_same_weights_different_seed_different():
    a, b, c = random_sae(8, 16, seed=3), random_sae(8, 16, seed=3), random_sae(8, 16, seed=4)
    assert a.content_hash() == b.content_hash()
    assert a.content_hash() != c.content_hash()
    assert not torch.allclose(a.W_dec_FD, c.W_dec_FD, atol=1e-2)


@pytest.mark.parametrize("kind", ["pca", "random"])
def test_saved_reference_baselines_load_back_and_encode_the_same(tmp_path, kind):
    acts_ND = correlated_acts(n_samples=500)
    sae = pca_sae(acts_ND) if kind == "pca" else random_sae(12, 30, seed=0, acts_ND=acts_ND)
    path = save_saelens(sae, tmp_path / kind)
    loaded = load_sae(path)
    assert loaded.content_hash() == sae.content_hash()
    torch.testing.assert_close(loaded.encode(acts_ND), sae.encode(acts_ND))
    sae_lens = pytest.importorskip("sae_lens")
    sl_sae = sae_lens.SAE.load_from_disk(str(path))
    with torch.no_grad():
        sl_codes_NF = sl_sae.encode(acts_ND)
        sl_recon_ND = sl_sae.decode(sl_codes_NF)
    torch.testing.assert_close(sl_codes_NF, sae.encode(acts_ND), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(sl_recon_ND, sae.decode(sae.encode(acts_ND)), rtol=1e-4, atol=1e-4)
