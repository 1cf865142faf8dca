"""The encoder interface every backend returns."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

from .._errors import FairfoundryError
from ._preprocess import preprocess_image
from ._spec import Preprocessing

__all__ = ["Encoder"]


class Encoder(abc.ABC):
    """An image (and, for vision-language models, text) encoder with its preprocessing.

    Obtain one with :func:`fairfoundry.models.load_encoder`. Backends subclass this and implement
    :meth:`image_features` (and :meth:`text_features` for VLMs).

    Attributes
    ----------
    name : str
        What the encoder was loaded as (preset name, ``backend:id`` or path).
    backend, model_id : str
        The backend and its model id.
    model_kwargs : dict
        Constructor arguments beyond the model id.
    module : torch.nn.Module
        The underlying network, in eval mode (use it as a distillation teacher or to fine-tune).
    preprocessing : Preprocessing
        Exact input size, channels, value range and normalisation.
    embed_dim : int
        Width of the vectors :meth:`encode_image` returns.
    weights_id : str
        ``sha256:<16 hex>`` of the weights file(s), or ``random:seed=<s>`` for random init.
    is_vlm : bool
        Whether :meth:`encode_text` is available.
    load_args : dict
        Keyword arguments that rebuild this encoder with ``load_encoder(**load_args)`` (used by the
        Ray executor to rebuild it on workers).
    """

    is_vlm: bool = False

    def __init__(self, *, name: str, backend: str, model_id: str, module, preprocessing: Preprocessing,
                 embed_dim: int, weights_id: str, model_kwargs: dict | None = None,
                 device: str = "cpu"):
        self.name = name
        self.backend = backend
        self.model_id = model_id
        self.model_kwargs = dict(model_kwargs or {})
        self.module = module.eval()
        self.preprocessing = preprocessing
        self.embed_dim = int(embed_dim)
        self.weights_id = weights_id
        self.load_args: dict[str, Any] = {}
        self.device = "cpu"
        self.to(device)

    # -- to implement ---------------------------------------------------------------------------
    @abc.abstractmethod
    def image_features(self, x):
        """Embeddings ``[n, embed_dim]`` of a preprocessed batch ``x`` ``[n, C, H, W]`` (with grad)."""

    def text_features(self, texts: Sequence[str]):
        """Embeddings ``[n, embed_dim]`` of ``texts`` (vision-language models only, with grad)."""
        raise FairfoundryError(f"model {self.name} is not a vision-language model: it has no text encoder",
                               hint="use a CLIP-style model (open_clip:..., biomedclip, hf CLIP/SigLIP)")

    # -- public API ------------------------------------------------------------------------------
    def to(self, device) -> Encoder:
        """Move the module to ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``)."""
        import torch

        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise FairfoundryError(f"unknown device {device!r}", hint="use cpu, cuda, cuda:N or mps") from exc
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise FairfoundryError(f"device {device!r} requested but CUDA is not available",
                                   hint="use --device cpu")
        self.module.to(dev)
        self.device = str(dev)
        return self

    def preprocess(self, image, *, source: str = "image"):
        """One image array (``(H, W)`` or ``(H, W, 3)``) -> input tensor ``[C, size, size]``."""
        return preprocess_image(image, self.preprocessing, source=source)

    def _batch(self, images):
        import torch

        if isinstance(images, torch.Tensor):
            x = images if images.ndim == 4 else images[None]
        else:
            x = torch.stack([self.preprocess(im) for im in images])
        p = self.preprocessing
        if x.shape[1] != p.channels or tuple(x.shape[2:]) != (p.size, p.size):
            raise FairfoundryError(
                f"model {self.name} expects input [n, {p.channels}, {p.size}, {p.size}], got "
                f"{list(x.shape)}", hint="pass raw image arrays to encode_image to preprocess them")
        return x.to(self.device, non_blocking=True)

    def encode_image(self, images, *, amp: bool | None = None):
        """Embed images without gradients (the result is usable as a distillation target).

        Parameters
        ----------
        images : torch.Tensor ``[n, C, H, W]`` already preprocessed, or a sequence of image arrays
        amp : bool, optional
            Mixed precision (float16 autocast); default: on for CUDA, off otherwise.

        Returns
        -------
        torch.Tensor ``[n, embed_dim]``, float32, on the encoder's device
        """
        import torch

        x = self._batch(images)
        dev = torch.device(self.device)
        use_amp = (dev.type == "cuda") if amp is None else bool(amp)
        with torch.inference_mode():
            if use_amp and dev.type in ("cuda", "cpu"):
                dtype = torch.float16 if dev.type == "cuda" else torch.bfloat16
                with torch.autocast(device_type=dev.type, dtype=dtype):
                    out = self.image_features(x)
            else:
                out = self.image_features(x)
        # a normal tensor (not an inference tensor), so it can serve as a distillation target
        return out.float().clone()

    def encode_text(self, texts: Sequence[str]):
        """Embed texts without gradients (vision-language models only)."""
        import torch

        if isinstance(texts, str):
            texts = [texts]
        with torch.inference_mode():
            out = self.text_features(list(texts))
        return out.float().clone()

    def portable_spec(self) -> tuple[str, dict]:
        """``(model_id, model_kwargs)`` that rebuild the architecture with no network access."""
        return self.model_id, dict(self.model_kwargs)

    def info(self) -> dict[str, Any]:
        """JSON-able description: name, backend, model, kwargs, weights id, preprocessing, dim."""
        return {
            "name": self.name,
            "backend": self.backend,
            "model": self.model_id,
            "model_kwargs": self.model_kwargs,
            "weights_id": self.weights_id,
            "preprocessing": self.preprocessing.to_dict(),
            "embed_dim": self.embed_dim,
            "vlm": self.is_vlm,
        }

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, embed_dim={self.embed_dim}, "
                f"input={self.preprocessing.channels}x{self.preprocessing.size}, "
                f"weights={self.weights_id!r}, device={self.device!r})")
