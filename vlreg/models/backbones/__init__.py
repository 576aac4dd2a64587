from .bert import BertTextBackbone
from .effnet_convert import convert_to_timm
from .timm_cnn import TimmCNNBackbone
from .vit import TimmViTBackbone, resize_pos_embed

__all__ = [
    'BertTextBackbone',
    'TimmCNNBackbone',
    'TimmViTBackbone',
    'convert_to_timm',
    'resize_pos_embed',
]
