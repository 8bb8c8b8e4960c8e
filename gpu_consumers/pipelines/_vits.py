"""Imports of transformers' VITS classes, kept in one place because of an import-time warning."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import VitsConfig, VitsModel, VitsTokenizer

__all__ = ["import_vits"]


def import_vits() -> tuple[type[VitsTokenizer], type[VitsModel], type[VitsConfig]]:
    """The VITS tokenizer, model and config classes.

    transformers' VITS module decorates a helper with ``torch.jit.script`` when it is first
    imported, which recent torch releases answer with a ``FutureWarning`` that says nothing
    about our use; it is silenced for that import only.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning
        )
        from transformers import VitsConfig, VitsModel, VitsTokenizer
    return VitsTokenizer, VitsModel, VitsConfig
