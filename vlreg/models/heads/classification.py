"""Classification heads for downstream tasks (SNLI-VE, NLVR2) on the fused [CLS] token."""

from __future__ import annotations

from torch import Tensor, nn

from vlreg.registry import HEADS

from ..utils.bert_layers import init_bert_weights

__all__ = ['MLPClassifierHead']


@HEADS.register_module()
class MLPClassifierHead(nn.Module):
    """ALBEF's task head: ``Linear(hidden, mlp_hidden) -> ReLU -> Linear(mlp_hidden, num_classes)``.

    ALBEF uses it for SNLI-VE (768-768-3) and NLVR2 (768-768-2) on the fusion encoder's [CLS].

    Args:
        hidden_size: width of the input feature (the fused [CLS]).
        num_classes: number of output logits.
        mlp_hidden: width of the hidden layer; None means ``hidden_size`` (ALBEF); 0 means no hidden
            layer, a single ``Linear(hidden_size, num_classes)`` (ALBEF's NLVR2 text-assignment
            head).

    Example:
        >>> dict(type='MLPClassifierHead', hidden_size=768, num_classes=3)
    """

    def __init__(self, hidden_size: int, num_classes: int, mlp_hidden: int | None = None) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f'MLPClassifierHead needs num_classes >= 2, got {num_classes}')
        self.hidden_size = hidden_size
        self.num_classes = num_classes
        if mlp_hidden == 0:
            self.mlp = nn.Sequential(nn.Linear(hidden_size, num_classes))
        else:
            mlp_hidden = mlp_hidden or hidden_size
            self.mlp = nn.Sequential(
                nn.Linear(hidden_size, mlp_hidden), nn.ReLU(), nn.Linear(mlp_hidden, num_classes)
            )
        init_bert_weights(self)

    def forward(self, cls: Tensor) -> Tensor:
        """``[B, hidden_size]`` -> logits ``[B, num_classes]``."""
        return self.mlp(cls)
