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
    get_weights="huggingface-cli download microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224 && "
    "huggingface-cli download microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract",
    modality="biomedical (PMC-15M figure-caption pairs)",
    description="ViT-B/16 image tower + PubMedBERT text tower, CLIP-trained on 15M PubMed "
    "Central figure-caption pairs (512-d)",
    paper="Zhang et al., BiomedCLIP, NEJM AI 2025 (arXiv 2303.00915)",
    embed_dim=512,
    vlm=True,
))

register_preset(Preset(
    name="pubmedclip",
    backend="hf",
    model="flaviagiammarino/pubmed-clip-vit-base-patch32",
    preprocessing=Preprocessing(size=224, channels=3, mean=CLIP_MEAN, std=CLIP_STD,
                                resize="shortest", interpolation="bicubic"),
    licence="MIT",
    source="https://huggingface.co/flaviagiammarino/pubmed-clip-vit-base-patch32",
    get_weights="huggingface-cli download flaviagiammarino/pubmed-clip-vit-base-patch32",
    modality="radiology (ROCO)",
    description="CLIP ViT-B/32 fine-tuned on ROCO radiology image-caption pairs (512-d)",
    paper="Eslami et al., PubMedCLIP, EACL Findings 2023",
    embed_dim=512,
    vlm=True,
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
))

register_preset(Preset(
    name="siglip-base",
    backend="hf",
    model="google/siglip-base-patch16-224",
    preprocessing=Preprocessing(size=224, channels=3, mean=(0.5,) * 3, std=(0.5,) * 3,
                                resize="squash", interpolation="bicubic"),
    licence="Apache-2.0",
    source="https://huggingface.co/google/siglip-base-patch16-224",
    get_weights="huggingface-cli download google/siglip-base-patch16-224",
    modality="natural images (general-domain baseline)",
    description="SigLIP ViT-B/16 at 224 px (768-d)",
    paper="Zhai et al., Sigmoid loss for language image pre-training, ICCV 2023",
    embed_dim=768,
    vlm=True,
))

register_preset(Preset(
    name="medsiglip",
    backend="hf",
    model="google/medsiglip-448",
    preprocessing=Preprocessing(size=448, channels=3, mean=(0.5,) * 3, std=(0.5,) * 3,
                                resize="squash", interpolation="bicubic"),
    licence="Health AI Developer Foundations terms of use (gated)",
    source="https://huggingface.co/google/medsiglip-448",
    get_weights="accept the terms on the model page, then huggingface-cli login && "
    "huggingface-cli download google/medsiglip-448",
    modality="chest X-ray, dermatology, ophthalmology, pathology, CT/MRI slices",
    description="SigLIP-400M image/text encoders adapted to medical images at 448 px (1152-d)",
    paper="Sellergren et al., MedGemma technical report, arXiv 2507.05201",
    embed_dim=1152,
    vlm=True,
))
