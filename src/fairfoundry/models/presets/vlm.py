"""Vision-language encoders (image + text): BiomedCLIP, PubMedCLIP, CLIP, SigLIP, MedSigLIP."""

from .._spec import CLIP_MEAN, CLIP_STD, Preprocessing, Preset, register_preset

register_preset(Preset(
    name="biomedclip",
    backend="open_clip",
    model="hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224",
    preprocessing=Preprocessing(size=224, channels=3, mean=CLIP_MEAN, std=CLIP_STD,
                                resize="shortest", interpolation="bicubic"),
    licence="MIT",
    source="https://huggingface.co/microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224",
    get_weights="hf download microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224 && "
    "hf download microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract",
    modality="biomedical (PMC-15M figure-caption pairs)",
    description="ViT-B/16 image tower + PubMedBERT text tower, CLIP-trained on 15M PubMed "
    "Central figure-caption pairs (512-d)",
    paper="Zhang et al., BiomedCLIP, NEJM AI 2025 (arXiv 2303.00915)",
    embed_dim=512,
    vlm=True,
    verified="preprocessing: open_clip_config.json of the hub repo (image_size 224; preprocess_cfg "
    "mean/std = OpenAI CLIP values; no interpolation/resize_mode keys, so open_clip's defaults: "
    "bicubic, shortest side + centre crop); licence: MIT in the model card metadata, whose text "
    "also puts any deployed use, commercial or not, out of scope (research only)",
))

register_preset(Preset(
    name="pubmedclip",
    backend="hf",
    model="flaviagiammarino/pubmed-clip-vit-base-patch32",
    preprocessing=Preprocessing(size=224, channels=3, mean=CLIP_MEAN, std=CLIP_STD,
                                resize="shortest", interpolation="bicubic"),
    licence="MIT",
    source="https://huggingface.co/flaviagiammarino/pubmed-clip-vit-base-patch32",
    get_weights="hf download flaviagiammarino/pubmed-clip-vit-base-patch32",
    modality="radiology (ROCO)",
    description="CLIP ViT-B/32 fine-tuned on ROCO radiology image-caption pairs (512-d)",
    paper="Eslami et al., PubMedCLIP, EACL Findings 2023",
    embed_dim=512,
    vlm=True,
    verified="licence: MIT in the model card metadata; preprocessing: the repo ships the "
    "CLIPImageProcessor of openai/clip-vit-base-patch32 (shortest_edge 224, crop 224, resample 3 "
    "= bicubic, OpenAI CLIP mean/std; the openai config was checked, the fine-tune's copy was not)",
))

register_preset(Preset(
    name="clip-vit-b16",
    backend="open_clip",
    model="ViT-B-16@openai",
    preprocessing=Preprocessing(size=224, channels=3, mean=CLIP_MEAN, std=CLIP_STD,
                                resize="shortest", interpolation="bicubic"),
    licence="MIT",
    source="https://github.com/openai/CLIP",
    get_weights="python -c \"import open_clip; open_clip.create_model('ViT-B-16', pretrained='openai')\"",
    modality="natural images (general-domain baseline)",
    description="OpenAI CLIP ViT-B/16 (512-d)",
    paper="Radford et al., CLIP, ICML 2021",
    embed_dim=512,
    vlm=True,
    verified="preprocessing: open_clip's OpenAI pretrained config (224, OPENAI_DATASET_MEAN/STD, "
    "bicubic, shortest side + centre crop), same values as openai/clip-vit-base-patch32's "
    "CLIPImageProcessor; licence: MIT (github.com/openai/CLIP LICENSE)",
))

register_preset(Preset(
    name="siglip-base",
    backend="hf",
    model="google/siglip-base-patch16-224",
    preprocessing=Preprocessing(size=224, channels=3, mean=(0.5,) * 3, std=(0.5,) * 3,
                                resize="squash", interpolation="bicubic"),
    licence="Apache-2.0",
    source="https://huggingface.co/google/siglip-base-patch16-224",
    get_weights="hf download google/siglip-base-patch16-224",
    modality="natural images (general-domain baseline)",
    description="SigLIP ViT-B/16 at 224 px (768-d)",
    paper="Zhai et al., Sigmoid loss for language image pre-training, ICCV 2023",
    embed_dim=768,
    vlm=True,
    verified="preprocessing: SiglipImageProcessor (size 224x224 without crop, resample 3 = "
    "bicubic, mean = std = 0.5); licence: Apache-2.0 in the model card metadata",
))

register_preset(Preset(
    name="medsiglip",
    backend="hf",
    model="google/medsiglip-448",
    preprocessing=Preprocessing(size=448, channels=3, mean=(0.5,) * 3, std=(0.5,) * 3,
                                resize="squash", interpolation="bicubic"),
    licence="Health AI Developer Foundations terms of use (gated; not an open-source licence)",
    source="https://huggingface.co/google/medsiglip-448",
    get_weights="accept the terms on the model page, then hf auth login && "
    "hf download google/medsiglip-448",
    modality="chest X-ray, dermatology, ophthalmology, pathology, CT/MRI slices",
    description="SigLIP-400M image/text encoders adapted to medical images at 448 px (1152-d)",
    paper="Sellergren et al., MedGemma technical report, arXiv 2507.05201",
    embed_dim=1152,
    vlm=True,
    verified="preprocessing: the model's preprocessor_config.json as mirrored publicly "
    "(SiglipImageProcessor, size 448x448 without crop, resample 3 = bicubic, mean = std = 0.5); "
    "448 px and the 400M SigLIP vision tower (1152-d) in the google-health/medsiglip README; "
    "licence: health-ai-developer-foundations on the model page",
))
