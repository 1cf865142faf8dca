"""torchxrayvision backend: chest X-ray DenseNet-121 / ResNet-50 (Cohen et al., MIDL 2022).

Model ids: a torchxrayvision weights name (``densenet121-res224-all``, ``densenet121-res224-nih``,
``resnet50-res512-all``, ...; the file is looked up in ``~/.torchxrayvision/models_data/``) or a
bare architecture (``densenet121``, ``resnet50``, ``resnet101``) for ``--weights PATH`` / random
init. Inputs are 1-channel images scaled to [-1024, 1024] (torchxrayvision's ``normalize``),
centre-cropped and resized to the training resolution. The embedding is the global-average-pooled
last feature map (DenseNet: ``features2``, 1024-d; ResNet-50: 2048-d).

torchxrayvision publishes its DenseNet weights as whole pickled models, so they need
``--trust-checkpoint`` (or a one-time conversion to safetensors with ``save_encoder``).
"""

from __future__ import annotations

import os
from pathlib import Path

from .._errors import FairfoundryError, did_you_mean
from ._checkpoint import load_state_dict_into, read_state_dict, unwrap_state_dict, weights_hash
from ._encoder import Encoder
from ._registry import Backend, register_backend, weights_or_random
from ._spec import Preprocessing

__all__ = ["XRVEncoder", "XRV_PREPROCESSING"]

#: torchxrayvision input convention at 224 px
XRV_PREPROCESSING = Preprocessing(size=224, channels=1, mean=(0.0,), std=(1.0,),
                                  value_range=(-1024.0, 1024.0), resize="shortest",
                                  interpolation="bilinear", gray="mean")
_ARCHS = ("densenet121", "resnet50", "resnet101")


class XRVEncoder(Encoder):
    def image_features(self, x):
        import torch.nn.functional as F

        m = self.module
        if hasattr(m, "features2"):
            feats = F.relu(m.features(x))
            return F.adaptive_avg_pool2d(feats, 1).flatten(1)
        h = m.maxpool(m.relu(m.bn1(m.conv1(x))))
        h = m.layer4(m.layer3(m.layer2(m.layer1(h))))
        return m.avgpool(h).flatten(1)


def _arch(model_id: str) -> str:
    if model_id.startswith("densenet"):
        return "densenet121"
    if model_id.startswith("resnet101"):
        return "resnet101"
    if model_id.startswith("resnet"):
        return "resnet50"
    return ""


def _weights_names() -> list[str]:
    import torchxrayvision as xrv

    return [k for k in xrv.models.model_urls if "-" in k]


def _cache_file(model_id: str) -> Path | None:
    import torchxrayvision as xrv

    entry = xrv.models.model_urls.get(model_id)
    if entry is None:
        return None
    return Path(os.path.expanduser(os.path.join(xrv.utils.get_cache_dir(),
                                                os.path.basename(entry["weights_url"]))))


def _build_arch(arch: str, kwargs: dict):
    import torch
    import torchvision
    import torchxrayvision as xrv

    if arch == "densenet121":
        allowed = {"growth_rate", "block_config", "num_init_features", "bn_size", "num_classes"}
        bad = sorted(set(kwargs) - allowed)
        if bad:
            raise FairfoundryError(f"xrv densenet does not take {bad}", hint=f"valid: {sorted(allowed)}")
        kw = dict(kwargs)
        if "block_config" in kw:
            kw["block_config"] = tuple(kw["block_config"])
        return xrv.models.DenseNet(weights=None, **kw)
    ctor = torchvision.models.resnet101 if arch == "resnet101" else torchvision.models.resnet50
    net = ctor(num_classes=int(kwargs.get("num_classes", 18)), weights=None)
    net.conv1 = torch.nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return net


def how_to_get(model_id: str) -> str:
    import torchxrayvision as xrv

    entry = xrv.models.model_urls.get(model_id)
    if entry is None:
        return "pass --weights PATH"
    local = _cache_file(model_id)
    from ._checkpoint import convert_command

    return (f"on a connected machine run: wget {entry['weights_url']} -O {local} (or "
            f"python -c \"import torchxrayvision as xrv; xrv.models.get_model('{model_id}')\"), "
            "or pass --download; DenseNet files are pickled whole models, so then pass "
            "--trust-checkpoint, or convert once: " + convert_command(f"xrv:{model_id}", local))


@register_backend("xrv")
class XRVBackend(Backend):
    description = "torchxrayvision chest X-ray DenseNet/ResNet (1 channel, [-1024, 1024])"
    requires = "torchxrayvision"
    examples = ("xrv:densenet121-res224-all", "xrv:resnet50-res512-all")

    @classmethod
    def default_weights_location(cls, model_id, model_kwargs):
        f = _cache_file(model_id)
        return f if f is not None and f.is_file() else None

    @classmethod
    def build(cls, model_id, *, weights, model_kwargs, seed, trust_checkpoint, download,
              preprocessing, name):
        import torchxrayvision as xrv

        arch = _arch(model_id)
        known = model_id in xrv.models.model_urls or model_id in _ARCHS
        if not arch or not known:
            raise FairfoundryError(f"unknown torchxrayvision model {model_id!r}",
                                   hint=did_you_mean(model_id, _weights_names() + list(_ARCHS),
                                                     what="xrv models"))
        path, wid = weights_or_random(weights, seed=seed)
        kwargs = {k: v for k, v in model_kwargs.items() if k != "input_resolution"}
        model = _build_arch(arch, kwargs)
        if wid is None and path is None:
            if model_id in _ARCHS:
                raise FairfoundryError(f"xrv:{model_id} is a bare architecture: pass --weights PATH",
                                       hint=f"or use a weights name: {', '.join(_weights_names())}")
            path = cls.default_weights_location(model_id, model_kwargs)
            if path is None and download:
                path = Path(xrv.models.get_weights(model_id))
            if path is None:
                raise FairfoundryError(f"no local weights for xrv:{model_id} (offline: nothing is "
                                       "downloaded unless you pass --download)", hint=how_to_get(model_id))
        if path is not None:
            sd = unwrap_state_dict(read_state_dict(path, trust_checkpoint=trust_checkpoint,
                                                 model_name=name))
            load_state_dict_into(model, sd, source=str(path), model_name=f"xrv:{model_id}",
                                 ignore_missing=("op_threshs",), ignore_unexpected=("op_threshs",))
            wid = "sha256:" + weights_hash(path)
        res = 512 if "res512" in model_id else int(model_kwargs.get("input_resolution", 224))
        prep = preprocessing or XRV_PREPROCESSING.replace(size=res)
        dim = model.classifier.in_features if arch == "densenet121" else model.fc.in_features
        return XRVEncoder(name=name, backend="xrv", model_id=model_id, module=model, preprocessing=prep,
                          embed_dim=int(dim), weights_id=wid, model_kwargs=model_kwargs)
