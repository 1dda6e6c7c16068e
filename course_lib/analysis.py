"""What a trained model learned: the measurements of chapter 8 (the ViT paper's Figure 7 and attention maps).

Every function takes tensors, not models, where it can, so each can be checked on a case computed by hand:

* :func:`attention_rollout` - Abnar & Zuidema (2020): attention through all layers, residual included;
* :func:`mass_inside_mask` - how much of an attention map falls on the object's pixels, against the share of
  the image the object covers (the ratio is 1 for attention spread evenly);
* :func:`mean_attention_distance` - the ViT paper's "attention distance" (Figure 7 right): per head, the
  distance in pixels between a query patch and the patches it attends to, averaged with the attention weights;
* :func:`position_similarity` - cosine similarity of learned position embeddings (Figure 7 centre);
* :func:`principal_filters` - principal components of the patch-embedding filters (Figure 7 left);
* :func:`swin_stage_maps` - the feature maps of each Swin stage (its hierarchy);
* :func:`timm_vit` - a timm ViT (pretrained weights where they can be downloaded, e.g. on Colab) converted
  into course_lib's :class:`~course_lib.vit.VisionTransformer`, with its input normalisation.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "attention_rollout",
    "mass_inside_mask",
    "patch_coverage",
    "patch_centres",
    "mean_attention_distance",
    "uniform_attention_distance",
    "position_similarity",
    "principal_filters",
    "swin_stage_maps",
    "timm_vit",
]


def attention_rollout(attentions: list[Tensor], residual: float = 0.5) -> Tensor:
    """Attention rollout (Abnar & Zuidema, 2020, "Quantifying Attention Flow in Transformers").

    Each layer's attention ``(B, heads, T, T)`` is averaged over heads, the residual connection is added as
    ``(1 - residual) * A + residual * I`` (the paper uses 0.5), rows are re-normalised to sum to 1, and the
    layers are multiplied from the first to the last: ``R = A'_L @ ... @ A'_1``. Row ``i`` of the result
    ``(B, T, T)`` says how much each input token contributes to output token ``i``; for a ViT, row 0
    (the class token) without its first entry is the rollout map over the patches.
    """
    if not attentions:
        raise ValueError("attention_rollout needs the attention of at least one layer")
    result = None
    for attn in attentions:
        if attn.dim() != 4 or attn.shape[-1] != attn.shape[-2]:
            raise ValueError(f"expected attention weights (B, heads, T, T), got {tuple(attn.shape)}")
        a = attn.mean(dim=1)  # (B, T, T)
        eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
        a = (1 - residual) * a + residual * eye
        a = a / a.sum(dim=-1, keepdim=True)
        result = a if result is None else a @ result
    return result


def patch_coverage(masks: Tensor, patch_size: int) -> Tensor:
    """Fraction of each patch covered by the mask: ``masks`` ``(B, H, W)`` bool -> ``(B, N)`` in ``[0, 1]``,
    patches in row-major order (the ViT's token order)."""
    cover = F.avg_pool2d(masks[:, None].float(), patch_size)  # (B, 1, H/P, W/P)
    return cover.flatten(1)


def mass_inside_mask(maps: Tensor, masks: Tensor, patch_size: int) -> tuple[Tensor, Tensor]:
    """Share of attention on the object, and share of the image the object covers.

    Args:
        maps: attention over the patches ``(B, N)`` (need not be normalised; must be >= 0).
        masks: object masks ``(B, H, W)`` bool, ``N = (H / patch_size) * (W / patch_size)``.
        patch_size: pixels per patch side.

    Returns:
        ``(inside, area)``, both ``(B,)``: ``inside`` = sum over patches of attention x the fraction of the
        patch on the object, divided by the total attention; ``area`` = the fraction of pixels on the object.
        ``inside / area`` is 1 when attention is spread evenly over the image.
    """
    cover = patch_coverage(masks, patch_size)
    if cover.shape != maps.shape:
        raise ValueError(f"maps {tuple(maps.shape)} do not match the masks' patch grid {tuple(cover.shape)}")
    inside = (maps * cover).sum(-1) / maps.sum(-1)
    return inside, masks.flatten(1).float().mean(-1)


def patch_centres(grid: int, patch_size: int) -> Tensor:
    """Pixel coordinates ``(row, col)`` of the centres of a ``grid x grid`` patch grid: ``(grid*grid, 2)``."""
    idx = torch.arange(grid, dtype=torch.float64) * patch_size + (patch_size - 1) / 2
    rows, cols = torch.meshgrid(idx, idx, indexing="ij")
    return torch.stack([rows.flatten(), cols.flatten()], dim=-1)


def mean_attention_distance(attn: Tensor, patch_size: int, num_prefix_tokens: int = 1) -> Tensor:
    """The ViT paper's mean attention distance, per head, in pixels.

    ``attn`` ``(B, heads, T, T)`` with ``T = num_prefix_tokens + grid**2``. The class token (the first
    ``num_prefix_tokens`` rows and columns) is left out; each patch query's weights over the patch keys are
    re-normalised to sum to 1, the Euclidean distance between query and key patch centres is averaged with
    those weights, then averaged over queries and images. Returns ``(heads,)``.
    """
    a = attn[:, :, num_prefix_tokens:, num_prefix_tokens:].double()
    n = a.shape[-1]
    grid = int(round(n**0.5))
    if grid * grid != n:
        raise ValueError(f"{n} patch tokens do not form a square grid")
    a = a / a.sum(-1, keepdim=True)
    centres = patch_centres(grid, patch_size).to(a.device)
    dist = torch.cdist(centres, centres)  # (N, N) pixels
    return (a * dist).sum(-1).mean(dim=(0, 2))


def uniform_attention_distance(grid: int, patch_size: int) -> float:
    """Mean attention distance of attention spread evenly over all patches (the "global" reference)."""
    centres = patch_centres(grid, patch_size)
    return torch.cdist(centres, centres).mean().item()


def position_similarity(pos_embed: Tensor, num_prefix_tokens: int = 1) -> Tensor:
    """Cosine similarity between the learned position embeddings of every pair of patches.

    ``pos_embed`` ``(1, T, D)`` or ``(T, D)``; the class token's (first ``num_prefix_tokens``) is dropped.
    Returns ``(N, N)``: entry ``(i, j)`` is the cosine of the angle between patches ``i`` and ``j``'s vectors.
    """
    p = pos_embed.reshape(-1, pos_embed.shape[-1])[num_prefix_tokens:].double()
    p = p / p.norm(dim=-1, keepdim=True)
    return p @ p.T


def principal_filters(weight: Tensor, k: int = 16) -> tuple[Tensor, Tensor]:
    """Principal components of the patch-embedding filters (ViT paper, Figure 7 left).

    ``weight`` ``(D, C, P, P)`` (the patch embedding's convolution). The ``D`` filters, flattened and centred,
    are decomposed by SVD. Returns ``(components (k, C, P, P), explained (k,))``: the top ``k`` principal
    directions (unit norm, sign arbitrary) and the fraction of the filters' variance each explains.
    """
    D = weight.shape[0]
    flat = weight.reshape(D, -1).double()
    flat = flat - flat.mean(dim=0, keepdim=True)
    _, s, vh = torch.linalg.svd(flat, full_matrices=False)
    k = min(k, vh.shape[0])
    var = s**2
    return vh[:k].reshape(k, *weight.shape[1:]).float(), (var[:k] / var.sum()).float()


@torch.no_grad()
def swin_stage_maps(model: nn.Module, x: Tensor) -> list[Tensor]:
    """The output of the patch embedding and of every stage of a course ``SwinTransformer``:
    a list of ``(B, H_s, W_s, C_s)`` maps, from the finest (``H/patch``) to the coarsest."""
    h = model.patch_embed(x)
    maps = [h]
    for stage in model.layers:
        h = stage(h)
        maps.append(h)
    return maps


def timm_vit(
    name: str = "deit_tiny_patch16_224", pretrained: bool = True, verbose: bool = True
) -> Optional[tuple[nn.Module, Tensor, Tensor]]:
    """timm's ViT ``name`` converted into course_lib's ViT, with the mean and std its weights expect.

    With ``pretrained=True`` timm downloads the weights (from the Hugging Face hub): that works online (on
    Colab), and anywhere else the failure is caught, one line says why, and ``None`` is returned. With
    ``pretrained=False`` the model is randomly initialised (no network; what the tests use).

    Returns ``(model, mean, std)``: the model in eval mode and ``(3, 1, 1)`` tensors to normalise images in
    ``[0, 1]`` with, or ``None``.
    """
    try:
        import timm

        from course_lib.convert import vit_from_timm

        reference = timm.create_model(name, pretrained=pretrained)
    except Exception as err:  # noqa: BLE001 - offline, hub errors, no timm: all mean "not available"
        if verbose:
            why = " ".join(str(err).split())[:200] or type(err).__name__
            print(f"Pretrained {name} is not available here ({why}); this section needs Colab or internet.")
        return None
    cfg = reference.pretrained_cfg
    mean = torch.tensor(cfg.get("mean", (0.5, 0.5, 0.5))).view(3, 1, 1)
    std = torch.tensor(cfg.get("std", (0.5, 0.5, 0.5))).view(3, 1, 1)
    return vit_from_timm(reference.eval()).eval(), mean, std
