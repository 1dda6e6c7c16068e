"""The converters refuse timm variants course_lib does not implement instead of computing something else."""

from __future__ import annotations

import pytest
import timm

from course_lib.convert import swin_from_timm, vit_from_timm


@pytest.mark.parametrize(
    "kwargs, what",
    [
        (dict(init_values=1e-5), "layer scale"),
        (dict(reg_tokens=4), "register tokens"),
        (dict(qk_norm=True), "QK normalisation"),
        (dict(global_pool="avg", fc_norm=False), "fc_norm"),
    ],
)
def test_vit_unsupported_variants_are_refused(kwargs: dict, what: str) -> None:
    ref = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, **kwargs)
    with pytest.raises(ValueError, match=what):
        vit_from_timm(ref)


def test_swin_unsupported_pooling_refused() -> None:
    ref = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, global_pool="max")
    with pytest.raises(ValueError, match="global_pool"):
        swin_from_timm(ref)


def test_converted_model_keeps_device_dtype_and_mode() -> None:
    ref = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32).double().train()
    ours = vit_from_timm(ref)
    assert next(ours.parameters()).dtype == next(ref.parameters()).dtype and ours.training
