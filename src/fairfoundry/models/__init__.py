"""The encoder zoo: one interface, one registry, offline-first loading, cached extraction.

Loading
-------
``load_encoder(name_or_path, *, weights=None, device="cpu")`` accepts

* a **preset** name (``fairfoundry models list``): ``rad-dino``, ``biomedclip``, ``dinov2-small``,
  ``retfound-cfp``, ``xrv-densenet121-all``, ...;
* ``backend:id``: ``timm:vit_small_patch16_224.dino``, ``open_clip:ViT-B-16``,
  ``hf:microsoft/rad-dino``, ``xrv:densenet121-res224-all``, ``retfound:vit_large_patch16``;
* a **local path**: a ``.safetensors`` written by :func:`save_encoder` (carries its architecture),
  a Hugging Face or open_clip model folder.

and returns an :class:`Encoder` with ``preprocessing``, ``embed_dim``, ``encode_image`` and, for
vision-language models, ``encode_text``. ``weights=PATH`` overrides where weights come from
(``"random"``: seeded random init). Nothing is downloaded unless ``download=True``; missing weights
raise a :class:`~fairfoundry.FairfoundryError` whose hint says how to get them.

Adding a preset (one small file)
--------------------------------
Create ``src/fairfoundry/models/presets/<family>.py`` (every module there is imported when the
registry is first read; import nothing heavy)::

    from .._spec import Preprocessing, Preset, register_preset

    register_preset(Preset(
        name="fairfoundry-tiny",                 # what users pass to --model
        backend="timm",                          # timm | open_clip | hf | xrv | retfound
        model="vit_tiny_patch16_224",            # the backend's model id
        model_kwargs={"img_size": 64, "patch_size": 8, "embed_dim": 192, "depth": 4,
                      "num_heads": 3},           # constructor arguments (timm.create_model kwargs)
        weights="package:fairfoundry.pretrain/_weights/fairfoundry-tiny.safetensors",
        preprocessing=Preprocessing(size=64, channels=3, mean=(0.5,) * 3, std=(0.5,) * 3),
        licence="Apache-2.0",
        source="trained by fairfoundry.pretrain on ...",
        get_weights="bundled with fairfoundry",
        description="...", modality="...", embed_dim=192,
    ))

``weights`` is ``None`` (the backend resolves the model id's published weights from the local
caches), a local path, or ``package:<python.module>/<relative path>`` for a file shipped inside a
package (remember to list its suffix in ``[tool.setuptools.package-data]``; ``*.safetensors`` is).
For the timm backend the weights file is the state dict of ``timm.create_model(model,
num_classes=0, **model_kwargs)`` (classifier keys are ignored). ``preprocessing`` fixes the
exact input size, channels (1 or 3), value range and mean/std (see :class:`Preprocessing`).

Adding a backend is one file too: subclass :class:`Backend`, decorate it with
``@register_backend("name")`` in a new module of this package -- it is found without any
import list. Another package adds one by declaring its module under the entry point group
``fairfoundry.backends``.

Extraction and the embeddings format
------------------------------------
:func:`extract_embeddings` (``fairfoundry embed``) writes to ``out/``:

* ``embeddings.npy`` -- float32 ``[n, d]``, rows in manifest order (skipped images left out);
* ``sample_ids.txt`` -- one ``sample_id`` per line, aligned to the rows;
* ``embeddings.json`` -- sidecar (written last): model, weights id (sha256), preprocessing,
  manifest fingerprint, cache key, versions; its presence means "complete".

:func:`read_embeddings` ``(dir) -> (sample_ids, array, meta)`` reads them back. Shards are cached
under a content-addressed key, so a re-run does no work and a killed run resumes.
"""

from ._aligned import aligned_embeddings
from ._checkpoint import load_state_dict_into, read_state_dict, unwrap_state_dict, weights_hash
from ._encoder import Encoder
from ._extract import (
    EMBEDDING_FILES,
    ExtractionResult,
    default_cache_dir,
    extract_embeddings,
    read_embeddings,
    read_image_manifest,
)
from ._preprocess import preprocess_image, to_unit_range
from ._probe import ProbeResult, leakage_permutation_test, probe_attributes
from ._registry import (
    BACKENDS,
    RANDOM,
    Backend,
    ModelRef,
    list_backends,
    load_encoder,
    register_backend,
    resolve_model,
    save_encoder,
)
from ._spec import (
    CLIP_MEAN,
    CLIP_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    PRESETS,
    Preprocessing,
    Preset,
    get_preset,
    list_presets,
    register_preset,
)

__all__ = [
    "BACKENDS",
    "CLIP_MEAN",
    "CLIP_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PRESETS",
    "RANDOM",
    "Backend",
    "EMBEDDING_FILES",
    "Encoder",
    "ExtractionResult",
    "default_cache_dir",
    "extract_embeddings",
    "read_embeddings",
    "aligned_embeddings",
    "read_image_manifest",
    "ModelRef",
    "Preprocessing",
    "Preset",
    "ProbeResult",
    "get_preset",
    "list_backends",
    "list_presets",
    "load_encoder",
    "load_state_dict_into",
    "preprocess_image",
    "probe_attributes",
    "leakage_permutation_test",
    "read_state_dict",
    "register_backend",
    "register_preset",
    "resolve_model",
    "save_encoder",
    "to_unit_range",
    "unwrap_state_dict",
    "weights_hash",
]
