r"""Pre-training and distillation losses, as plain functions of tensors.

Every objective module of :mod:`fairfoundry.pretrain` computes its loss with one of these
functions, so each can be checked on its own (``tests/pretrain/test_losses.py`` compares
:func:`clip_loss` and :func:`siglip_loss` with open_clip's ``ClipLoss`` / ``SigLipLoss``).

Conventions for the vision-language losses follow open_clip: features are already
L2-normalised, ``logit_scale`` is already exponentiated (a positive multiplier, e.g.
``1 / 0.07``), ``logit_bias`` is added as is.
"""

from __future__ import annotations

__all__ = [
    "clip_loss",
    "siglip_loss",
    "nt_xent_loss",
    "dino_loss",
    "mae_loss",
    "ijepa_loss",
    "cosine_loss",
    "smooth_l1_feature_loss",
]


def clip_loss(image_features, text_features, logit_scale):
    r"""Symmetric InfoNCE loss of CLIP.

    .. math::
        L = \tfrac12\big[\mathrm{CE}(s\,I T^\top, \mathrm{id}) + \mathrm{CE}(s\,T I^\top, \mathrm{id})\big]

    with :math:`I, T` the ``(B, D)`` normalised image / text features, :math:`s` the logit scale
    and ``id`` the matching pairs on the diagonal.

    Source: Radford et al., "Learning Transferable Visual Models From Natural Language
    Supervision", ICML 2021; same value as ``open_clip.loss.ClipLoss`` (single process).

    Parameters
    ----------
    image_features, text_features : Tensor ``(B, D)``, L2-normalised
    logit_scale : Tensor or float, already exponentiated (``exp(log_scale)``)

    Returns
    -------
    Tensor, scalar
    """
    import torch
    import torch.nn.functional as F

    logits = logit_scale * image_features @ text_features.T
    labels = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def siglip_loss(image_features, text_features, logit_scale, logit_bias):
    r"""Pairwise sigmoid loss of SigLIP.

    .. math::
        L = -\frac{1}{B}\sum_{i,j} \log \sigma\big(z_{ij}\,(s\, I_i\cdot T_j + b)\big),
        \qquad z_{ij} = 1 \text{ if } i = j \text{ else } -1

    Source: Zhai et al., "Sigmoid Loss for Language Image Pre-Training", ICCV 2023; same value
    as ``open_clip.loss.SigLipLoss`` (single process: the sum over all pairs divided by the
    batch size).

    Parameters
    ----------
    image_features, text_features : Tensor ``(B, D)``, L2-normalised
    logit_scale : Tensor or float, already exponentiated (SigLIP initialises it at 10)
    logit_bias : Tensor or float (SigLIP initialises it at -10)
    """
    import torch
    import torch.nn.functional as F

    logits = logit_scale * image_features @ text_features.T + logit_bias
    n = logits.shape[0]
    labels = 2 * torch.eye(n, device=logits.device, dtype=logits.dtype) - 1
    return -F.logsigmoid(labels * logits).sum() / n


def nt_xent_loss(z1, z2, *, temperature: float = 0.1):
    r"""NT-Xent (normalised temperature-scaled cross entropy) of SimCLR.

    For :math:`2B` normalised projections (two views per image), each view's positive is the
    other view of the same image and its negatives are the other :math:`2B-2` views:

    .. math::
        \ell_{i} = -\log \frac{\exp(\mathrm{sim}(z_i, z_{p(i)})/\tau)}
                              {\sum_{k \ne i} \exp(\mathrm{sim}(z_i, z_k)/\tau)}

    averaged over all :math:`2B` views. Source: Chen et al., "A Simple Framework for Contrastive
    Learning of Visual Representations", ICML 2020 (eq. 1).

    Parameters
    ----------
    z1, z2 : Tensor ``(B, D)``, projections of the two views (normalised here)
    temperature : float
        :math:`\tau` (0.1 in the paper's ImageNet setting).
    """
    import torch
    import torch.nn.functional as F

    b = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2], dim=0), dim=-1)
    sim = z @ z.T / temperature
    sim = sim.masked_fill(torch.eye(2 * b, dtype=torch.bool, device=z.device), float("-inf"))
    targets = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
    return F.cross_entropy(sim, targets)


def dino_loss(student_out, teacher_out, center, *, student_temp: float = 0.1,
              teacher_temp: float = 0.04):
    r"""DINO self-distillation loss across crops.

    .. math::
        L = \frac{1}{|\mathcal P|}\sum_{(t, s) \in \mathcal P}
            -\,\mathrm{softmax}\!\big((g_t - c)/\tau_t\big) \cdot
            \log \mathrm{softmax}(g_s / \tau_s)

    over all pairs of a teacher (global) crop :math:`t` and a student crop :math:`s \ne t`,
    averaged over the batch; :math:`c` is the centre (a running mean of teacher outputs) and
    :math:`\tau_t < \tau_s` sharpens the teacher. Centring and sharpening together avoid collapse.
    Source: Caron et al., "Emerging Properties in Self-Supervised Vision Transformers",
    ICCV 2021 (Algorithm 1; paper defaults :math:`\tau_s = 0.1`, :math:`\tau_t = 0.04`).

    Parameters
    ----------
    student_out : list of Tensor ``(B, K)``, one per crop, global crops first
    teacher_out : list of Tensor ``(B, K)``, one per global crop
    center : Tensor ``(1, K)``
    """
    import torch.nn.functional as F

    total, pairs = 0.0, 0
    for it, t in enumerate(teacher_out):
        q = F.softmax((t.detach() - center) / teacher_temp, dim=-1)
        for js, s in enumerate(student_out):
            if js == it:
                continue
            total = total + (-q * F.log_softmax(s / student_temp, dim=-1)).sum(dim=-1).mean()
            pairs += 1
    return total / max(pairs, 1)


def mae_loss(pred, target, mask, *, norm_pix_loss: bool = False, eps: float = 1e-6):
    r"""Masked-autoencoder reconstruction loss, on masked patches only.

    .. math::
        L = \frac{\sum_{n} m_n \,\frac1P\lVert \hat x_n - x_n\rVert^2}{\sum_n m_n}

    with :math:`m_n = 1` for masked (hidden) patches. Visible patches contribute nothing: their
    targets can be anything. With ``norm_pix_loss`` each target patch is standardised by its own
    mean and variance first (the paper's better-representations variant).
    Source: He et al., "Masked Autoencoders Are Scalable Vision Learners", CVPR 2022, sec. 3.

    Parameters
    ----------
    pred, target : Tensor ``(B, N, P)``, predicted and true patch pixels
    mask : Tensor ``(B, N)``, 1 where the patch was masked
    """
    if norm_pix_loss:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True, unbiased=True)
        target = (target - mean) / (var + eps).sqrt()
    per_patch = ((pred - target) ** 2).mean(dim=-1)
    mask = mask.to(per_patch.dtype)
    # where() rather than multiplication: a NaN/inf target in a visible patch cannot leak in
    per_patch = per_patch.where(mask > 0, per_patch.new_zeros(()))
    return per_patch.sum() / mask.sum().clamp_min(1.0)


def ijepa_loss(pred, target):
    r"""I-JEPA feature-prediction loss: mean squared error to layer-normalised target features.

    .. math:: L = \frac1{M}\sum_{i=1}^{M} \frac{1}{|B_i|}\sum_{j\in B_i}\lVert \hat s_{y_j} - s_{y_j}\rVert_2^2

    (the squared error is averaged over feature dimensions as well). Source: Assran et al.,
    "Self-Supervised Learning from Images with a Joint-Embedding Predictive Architecture",
    CVPR 2023, eq. (1); targets are the target encoder's outputs after a parameter-free
    layer norm, as in the paper.
    """
    import torch.nn.functional as F

    target = F.layer_norm(target.detach(), target.shape[-1:])
    return F.mse_loss(pred, target)


def cosine_loss(pred, target):
    r"""Mean cosine distance :math:`1 - \cos(\hat y, y)` over the last dimension."""
    import torch.nn.functional as F

    return (1 - F.cosine_similarity(pred, target.detach(), dim=-1)).mean()


def smooth_l1_feature_loss(pred, target, *, beta: float = 1.0):
    r"""Smooth-L1 (Huber) distance between features, averaged over all entries.

    Used with :func:`cosine_loss` for the feature (patch-token) heads of knowledge
    agglomeration, following Ranzinger et al., "AM-RADIO: Agglomerative Vision Foundation Model",
    CVPR 2024 (cosine + smooth-L1 on spatial features, cosine on summary tokens).
    """
    import torch.nn.functional as F

    return F.smooth_l1_loss(pred, target.detach(), beta=beta)
