"""Every backend: tiny random-init model -> saved to tmp_path -> loaded back through load_encoder."""

from __future__ import annotations

import argparse
import pickle

import numpy as np
import pytest
import torch

from fairfoundry._errors import FairfoundryError
from fairfoundry.models import load_encoder, read_state_dict, save_encoder

RNG = np.random.default_rng(0)
GREY = RNG.integers(0, 256, (40, 48)).astype(np.uint8)
RGB = RNG.integers(0, 256, (36, 30, 3)).astype(np.uint8)


def _same(a, b):
    ea = a.encode_image([GREY, RGB])
    eb = b.encode_image([GREY, RGB])
    assert ea.shape == (2, a.embed_dim)
    torch.testing.assert_close(ea, eb, rtol=0, atol=1e-6)


def test_timm_safetensors_round_trip_and_weights_override(tmp_path, tiny_vit):
    TINY_VIT = tiny_vit
    enc = load_encoder("timm:vit_tiny_patch16_224", weights="random", model_kwargs=TINY_VIT)
    assert enc.embed_dim == 32 and enc.preprocessing.size == 32 and enc.weights_id == "random:seed=0"
    path = save_encoder(enc, tmp_path / "tiny.safetensors")
    back = load_encoder(path)
    _same(enc, back)
    assert back.weights_id.startswith("sha256:")
    # a plain state dict (.pth, weights_only) for an explicit backend:id + --weights
    torch.save(enc.module.state_dict(), tmp_path / "sd.pth")
    again = load_encoder("timm:vit_tiny_patch16_224", weights=tmp_path / "sd.pth", model_kwargs=TINY_VIT)
    _same(enc, again)
    other = load_encoder("timm:vit_tiny_patch16_224", weights="random", seed=1, model_kwargs=TINY_VIT)
    assert not torch.allclose(other.encode_image([GREY]), enc.encode_image([GREY]))


def test_wrong_architecture_names_the_mismatched_keys(tiny_encoder_file, tiny_vit):
    with pytest.raises(FairfoundryError) as err:
        load_encoder("timm:vit_tiny_patch16_224", weights=tiny_encoder_file,
                     model_kwargs={**tiny_vit, "depth": 2, "embed_dim": 48})
    msg = err.value.message
    assert "missing keys: blocks.1." in msg
    assert "shape mismatch (file vs model): blocks.0.attn.proj.bias (32,) vs (48,)" in msg
    # the file carries its architecture, so the hint says what it is and how to load it
    assert "saved by fairfoundry for timm:vit_tiny_patch16_224" in err.value.hint
    assert f"--model {tiny_encoder_file}" in err.value.hint


def test_open_clip_tiny_custom_model_image_and_text(tmp_path):
    cfg = {"embed_dim": 16,
           "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
           "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    enc = load_encoder("open_clip:custom", weights="random", model_kwargs={"model_cfg": cfg})
    assert enc.is_vlm and enc.embed_dim == 16 and enc.preprocessing.size == 32
    back = load_encoder(save_encoder(enc, tmp_path / "clip.safetensors"))
    _same(enc, back)
    t1, t2 = enc.encode_text(["a chest x-ray"]), back.encode_text(["a chest x-ray"])
    assert t1.shape == (1, 16)
    torch.testing.assert_close(t1, t2, rtol=0, atol=1e-6)
    # open_clip's own local-dir format (open_clip_config.json + weights) loads as a folder too
    import json

    d = tmp_path / "oc_dir"
    d.mkdir()
    (d / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg, "preprocess_cfg": {}}))
    torch.save(enc.module.state_dict(), d / "open_clip_pytorch_model.bin")
    _same(enc, load_encoder(d))


def test_hf_tiny_dinov2_and_clip_folders(tmp_path):
    from transformers import CLIPConfig, CLIPModel, Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=64, image_size=28, patch_size=14)).save_pretrained(tmp_path / "dino")
    enc = load_encoder(f"hf:{tmp_path / 'dino'}")
    assert enc.embed_dim == 32 and enc.preprocessing.size == 28 and not enc.is_vlm
    _same(enc, load_encoder(tmp_path / "dino"))  # a bare folder path resolves to the hf backend
    _same(enc, load_encoder(save_encoder(enc, tmp_path / "dino.safetensors")))
    # the CLS embedding is the model's own layer-normed [CLS] token
    x = enc.preprocess(RGB)[None]
    with torch.no_grad():
        ref = enc.module(pixel_values=x).last_hidden_state[:, 0]
    torch.testing.assert_close(enc.encode_image(x), ref)

    cfg = CLIPConfig(
        text_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "vocab_size": 100, "max_position_embeddings": 16,
                     "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                       "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
        projection_dim=16)
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<pad>", "<eos>", "[UNK]", "a", "chest", "x-ray", "effusion"]
    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="<eos>",
                                        unk_token="[UNK]", model_max_length=16)
    model = CLIPModel(cfg)
    model.save_pretrained(tmp_path / "clip")
    tokenizer.save_pretrained(tmp_path / "clip")
    clip = load_encoder(tmp_path / "clip")
    assert clip.is_vlm and clip.embed_dim == 16
    assert clip.encode_image([GREY]).shape == (1, 16)
    text = clip.encode_text(["a chest x-ray", "effusion"])
    tok = tokenizer(["a chest x-ray"], padding="max_length", max_length=16, return_tensors="pt")
    with torch.no_grad():
        ref = model.get_text_features(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"])
    ref = getattr(ref, "pooler_output", ref)
    assert text.shape == (2, 16)
    torch.testing.assert_close(text[:1], ref, rtol=1e-5, atol=1e-5)


def test_xrv_tiny_densenet_uses_one_channel_and_xrv_range(tmp_path):
    kw = {"block_config": [1, 1, 1, 1], "growth_rate": 8, "num_init_features": 8, "input_resolution": 64}
    enc = load_encoder("xrv:densenet121", weights="random", model_kwargs=kw)
    p = enc.preprocessing
    assert (p.channels, p.size, p.value_range) == (1, 64, (-1024.0, 1024.0))
    _same(enc, load_encoder(save_encoder(enc, tmp_path / "xrv.safetensors")))
    # torchxrayvision publishes whole pickled models: refused unless trusted
    torch.save(enc.module, tmp_path / "xrv_full.pt")
    with pytest.raises(FairfoundryError, match="refusing to unpickle.*--trust-checkpoint") as err:
        load_encoder("xrv:densenet121", weights=tmp_path / "xrv_full.pt", model_kwargs=kw)
    # the hint gives the exact one-time conversion command
    assert (f"fairfoundry models convert xrv:densenet121 --weights {tmp_path / 'xrv_full.pt'} "
            f"--trust-checkpoint --out {tmp_path / 'xrv_full.safetensors'}") in err.value.hint
    assert p.gray == "mean"  # torchxrayvision's documented img.mean(2) for colour files
    trusted = load_encoder("xrv:densenet121", weights=tmp_path / "xrv_full.pt", model_kwargs=kw,
                           trust_checkpoint=True)
    _same(enc, trusted)
    # same features as torchxrayvision's own features2
    x = enc.preprocess(GREY)[None]
    with torch.no_grad():
        torch.testing.assert_close(enc.encode_image(x), enc.module.features2(x))


def test_retfound_checkpoint_format_with_mae_decoder_and_training_args(tmp_path):
    import timm

    kw = {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 1, "num_heads": 2}
    torch.manual_seed(0)
    vit = timm.create_model("vit_large_patch16_224", num_classes=0, **kw)
    sd = vit.state_dict()
    sd["mask_token"] = torch.zeros(1, 1, 32)
    sd["decoder_embed.weight"] = torch.zeros(16, 32)
    torch.save({"model": sd, "epoch": 799, "args": argparse.Namespace(lr=1e-3)}, tmp_path / "rf.pth")
    enc = load_encoder("retfound:vit_large_patch16", weights=tmp_path / "rf.pth", model_kwargs=kw)
    assert enc.embed_dim == 32 and enc.preprocessing.crop_pct == pytest.approx(0.875)
    # RETFound's feature: mean of patch tokens, then a fresh LayerNorm (unit weight, zero bias)
    x = enc.preprocess(RGB)[None]
    with torch.no_grad():
        tokens = vit.forward_features(x)  # blocks + (checkpoint) norm; recompute without norm
        h = vit.patch_embed(x)
        h = vit._pos_embed(h)
        h = vit.blocks(vit.norm_pre(h))
        ref = torch.nn.functional.layer_norm(h[:, 1:].mean(1), (32,), eps=1e-6)
    assert tokens.shape[-1] == 32
    torch.testing.assert_close(enc.encode_image(x), ref, rtol=1e-5, atol=1e-5)
    with pytest.raises(FairfoundryError, match="needs its checkpoint"):
        load_encoder("retfound-cfp")


def test_pickle_files_are_refused_unless_trusted(tmp_path):
    sd = {"w": torch.zeros(2)}
    with open(tmp_path / "w.pkl", "wb") as fh:
        pickle.dump(sd, fh)
    with pytest.raises(FairfoundryError, match="refusing to unpickle") as err:
        read_state_dict(tmp_path / "w.pkl")
    assert "--trust-checkpoint" in err.value.hint
    assert set(read_state_dict(tmp_path / "w.pkl", trust_checkpoint=True)) == {"w"}


def test_unknown_models_and_missing_weights_give_actionable_errors(tmp_path, tiny_encoder_file):
    with pytest.raises(FairfoundryError, match="unknown model 'radd-ino'") as err:
        load_encoder("radd-ino")
    assert "did you mean 'rad-dino'" in err.value.hint
    with pytest.raises(FairfoundryError, match="unknown model backend 'tim'") as err:
        load_encoder("tim:vit_small_patch16_224")
    assert "timm" in err.value.hint
    with pytest.raises(FairfoundryError, match="unknown timm model") as err:
        load_encoder("timm:vit_smal_patch16_224", weights="random")
    assert "vit_small_patch16_224" in err.value.hint
    # offline: nothing is downloaded; the hint says how to get the weights
    with pytest.raises(FairfoundryError, match="no local weights for timm:resnet18") as err:
        load_encoder("timm:resnet18.a1_in1k")
    assert "timm.create_model('resnet18.a1_in1k', pretrained=True)" in err.value.hint
    with pytest.raises(FairfoundryError, match="no local copy of hf:microsoft/rad-dino") as err:
        load_encoder("rad-dino")
    assert "hf download microsoft/rad-dino" in err.value.hint
    with pytest.raises(FairfoundryError, match="weights file not found"):
        load_encoder("timm:vit_tiny_patch16_224", weights=tmp_path / "nope.safetensors")
    torch.save({"w": torch.zeros(1)}, tmp_path / "bare.pt")
    with pytest.raises(FairfoundryError, match="cannot tell which architecture"):
        load_encoder(tmp_path / "bare.pt")
    with pytest.raises(FairfoundryError, match="not a vision-language model"):
        load_encoder(tiny_encoder_file).encode_text(["x"])
    with pytest.raises(FairfoundryError, match="expects input"):
        load_encoder(tiny_encoder_file).encode_image(torch.zeros(1, 3, 16, 16))


def test_encoder_outputs_serve_as_distillation_targets(tiny_encoder_file, tiny_vit):
    teacher = load_encoder(tiny_encoder_file)
    student = load_encoder("timm:vit_tiny_patch16_224", weights="random", seed=3, model_kwargs=tiny_vit)
    student.module.train()
    x = teacher.preprocess(RGB)[None]
    target = teacher.encode_image(x)
    assert not target.requires_grad
    loss = torch.nn.functional.mse_loss(student.image_features(x), target)
    loss.backward()  # would fail with an inference-mode tensor as target
    assert student.module.patch_embed.proj.weight.grad is not None


def test_preset_resolves_from_the_local_hub_cache_without_network(tmp_path, monkeypatch):
    """rad-dino found in a (fake, tiny) HF cache: no download, preset preprocessing applies."""
    import huggingface_hub.constants as hub_constants
    from transformers import Dinov2Config, Dinov2Model

    from fairfoundry.models import resolve_model

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path))
    repo = tmp_path / "models--microsoft--rad-dino"
    Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=64, image_size=28, patch_size=14)).save_pretrained(
        repo / "snapshots" / ("a" * 40))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    ref = resolve_model("rad-dino")
    enc = load_encoder("rad-dino")
    assert enc.weights_id == ref.weights_fingerprint() and enc.weights_id.startswith("sha256:")
    p = enc.preprocessing
    assert (p.size, p.channels, p.mean[0], p.std[0]) == (518, 3, 0.5307, 0.2583)
    assert enc.encode_image([GREY]).shape == (1, 32)


def test_timm_id_resolves_from_the_local_hub_cache(tmp_path, monkeypatch):
    """A timm id whose weights sit in the HF cache loads offline, classifier removed."""
    import huggingface_hub.constants as hub_constants
    import timm
    from safetensors.torch import save_file

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path))
    repo = tmp_path / "models--timm--vit_tiny_patch16_224.augreg_in21k_ft_in1k"
    snap = repo / "snapshots" / ("b" * 40)
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("b" * 40)
    torch.manual_seed(1)
    published = timm.create_model("vit_tiny_patch16_224", num_classes=1000)  # with its head
    save_file(published.state_dict(), str(snap / "model.safetensors"))
    enc = load_encoder("timm:vit_tiny_patch16_224")
    assert enc.embed_dim == 192 and enc.weights_id.startswith("sha256:")
    published.reset_classifier(0)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(enc.encode_image(x), published.eval()(x))


def test_preset_preprocessing_is_checked_against_the_folders_preprocessor_config(tmp_path, caplog):
    """A folder with the published DINOv2 preprocessor_config.json agrees with the dinov2 presets
    and disagrees (warning naming the fields) with RAD-DINO's values."""
    import json
    import logging

    from transformers import Dinov2Config

    from fairfoundry.models import get_preset
    from fairfoundry.models._hf import check_against_folder

    (tmp_path / "preprocessor_config.json").write_text(json.dumps({
        "crop_size": {"height": 224, "width": 224}, "do_center_crop": True, "do_normalize": True,
        "do_resize": True, "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225],
        "image_processor_type": "BitImageProcessor", "resample": 3, "size": {"shortest_edge": 256}}))
    cfg = Dinov2Config()
    assert check_against_folder(get_preset("dinov2-small").preprocessing, tmp_path, cfg, name="d") == []
    with caplog.at_level(logging.WARNING, logger="fairfoundry.models._hf"):
        diffs = check_against_folder(get_preset("rad-dino").preprocessing, tmp_path, cfg, name="rad-dino")
    assert {d.split()[0] for d in diffs} == {"size", "mean", "std", "crop_pct"}
    assert "rad-dino: preset preprocessing differs" in caplog.text
