"""Partial fine-tuning: train the last ``k`` blocks of a backbone (and what follows them), freeze the rest.

The backbone's *blocks* are found, not named: the repeated units of its trunk, i.e. a
``ModuleList`` / ``Sequential`` whose children are all of one class (timm ViT ``blocks``, open_clip
``transformer.resblocks``, a Hugging Face ViT's ``encoder.layer`` / ``layers``, a ResNet stage). Among such containers
with at least two children, the trunk is the last one, in registration order, that holds at least a
quarter of the backbone's parameters (in a ResNet the last stage, not a longer earlier one). In a
dual image-text model (open_clip ``CLIP``, a Hugging Face ``CLIPModel`` / ``SiglipModel``) only the
image tower (``visual`` / ``vision_model``) is searched and adapted: the text tower stays frozen. The
last ``k`` blocks are trained, and so is every module registered after the trunk (a ViT's final
norm, open_clip's ``ln_post``); everything else is frozen: the modules before the trunk (patch
embedding, stem), the earlier blocks, and parameters held directly by the trunk's parent modules
(class token, position embeddings, open_clip's output ``proj``), and in a dual model everything
outside the image tower (its text tower, and the image projection of a Hugging Face ``CLIPModel``,
``visual_projection``, like open_clip's ``proj``). BatchNorm layers left frozen also keep their
running statistics (they stay in eval mode while the rest trains).

Partial fine-tuning of the last layers is the usual middle ground between a linear probe and full
fine-tuning in transfer-learning studies (e.g. Yosinski et al., NeurIPS 2014; the review's section
4.1.2 lists it among the adaptation strategies whose fairness effect is open).
"""

from __future__ import annotations

from .._errors import FairfoundryError

__all__ = ["find_blocks", "freeze_all_but_last_blocks", "image_tower", "keep_frozen_norms_in_eval"]

_MIN_SHARE = 0.25


def image_tower(module) -> tuple[str, object]:
    """``(attribute, sub-module)`` of a dual image-text model's image tower, or ``("", module)``."""
    from torch import nn

    for attr in ("visual", "vision_model"):
        sub = getattr(module, attr, None)
        if isinstance(sub, nn.Module):
            return attr, sub
    return "", module


def keep_frozen_norms_in_eval(module) -> int:
    """Keep every BatchNorm of ``module`` whose parameters are all frozen in eval mode, also after
    ``module.train()``: its running mean and variance are weights too, and a frozen layer must not
    learn them from the fine-tuning data. Returns how many layers were held."""
    from torch import nn

    def _eval(mod, _inputs):
        mod.train(False)

    held = 0
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and not any(p.requires_grad for p in m.parameters()):
            if not getattr(m, "_fairfoundry_frozen_eval", False):
                m.register_forward_pre_hook(_eval)
                m._fairfoundry_frozen_eval = True
            held += 1
    return held


def find_blocks(module) -> tuple[str, list]:
    """The backbone's trunk of repeated blocks: ``(qualified name, [block modules])``.

    Raises
    ------
    FairfoundryError
        when the module has no container of two or more same-class children holding at least a
        quarter of its parameters (partial fine-tuning is then undefined: use full, lora or frozen).
    """
    from torch import nn

    total = sum(p.numel() for p in module.parameters())
    found: tuple[str, list] | None = None
    for name, sub in module.named_modules():
        if not isinstance(sub, (nn.ModuleList, nn.Sequential)):
            continue
        children = list(sub.children())
        if len(children) < 2 or len({type(c) for c in children}) != 1:
            continue
        share = sum(p.numel() for p in sub.parameters()) / max(total, 1)
        if share >= _MIN_SHARE:
            found = (name, children)  # named_modules is in registration order: the last one wins
    if found is None:
        raise FairfoundryError(
            f"partial fine-tuning needs a backbone with a trunk of repeated blocks; {type(module).__name__} has "
            "none (no list of two or more same-class modules holding a quarter of its weights)",
            hint="use --adaptation full, lora or frozen for this encoder")
    return found


def freeze_all_but_last_blocks(module, blocks: int) -> dict:
    """Train the last ``blocks`` trunk blocks of ``module`` and the modules after the trunk; freeze the rest.

    Returns ``{"container", "n_blocks", "trained_blocks", "trainable_share"}`` (the share of the
    backbone's parameters left trainable).
    """
    blocks = int(blocks)
    tower_attr, tower = image_tower(module)
    name, trunk = find_blocks(tower)
    if not 1 <= blocks <= len(trunk):
        raise FairfoundryError(f"partial fine-tuning: partial_blocks (--partial-blocks) must be between 1 and "
                               f"{len(trunk)}, the number of blocks in the encoder's trunk "
                               f"'{name or type(tower).__name__}', got {blocks}")
    trained = [*trunk[len(trunk) - blocks:]]
    seen_trunk = False
    for sub_name, sub in tower.named_modules():  # pre-order, registration order
        inside = not name or sub_name == name or sub_name.startswith(f"{name}.")
        seen_trunk = seen_trunk or inside
        if seen_trunk and not inside and not name.startswith(f"{sub_name}."):
            trained.append(sub)  # registered after the trunk, outside it: a final norm, a pooler
    keep = {id(p) for m in trained for p in m.parameters()}
    n_train = n_all = 0
    for p in module.parameters():
        p.requires_grad_(id(p) in keep)
        n_all += p.numel()
        n_train += p.numel() if id(p) in keep else 0
    keep_frozen_norms_in_eval(module)
    return {"container": f"{tower_attr}.{name}" if tower_attr else name, "n_blocks": len(trunk),
            "trained_blocks": blocks, "trainable_share": n_train / max(n_all, 1)}
