"""Offline-first access to the Hugging Face hub cache (no network unless asked)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["cached_hub_file", "cached_hub_snapshot"]


def cached_hub_file(repo_id: str, filenames: tuple[str, ...]) -> Path | None:
    """Path of the first of ``filenames`` of ``repo_id`` already in the local HF cache, or None."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub comes with timm
        return None
    for fn in filenames:
        try:
            hit = try_to_load_from_cache(repo_id, fn)
        except Exception:  # invalid repo id, ...
            return None
        if isinstance(hit, str):
            return Path(hit)
    return None


def cached_hub_snapshot(repo_id: str) -> Path | None:
    """Local snapshot folder of ``repo_id`` in the HF cache (no network), or None."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # pragma: no cover
        return None
    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:
        return None
