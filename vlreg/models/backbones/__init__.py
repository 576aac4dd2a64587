from .bert import BertTextBackbone
from .vit import TimmViTBackbone, resize_pos_embed

__all__ = ['BertTextBackbone', 'TimmViTBackbone', 'resize_pos_embed']
