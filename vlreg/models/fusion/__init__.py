from .bert_fusion import BertFusion, FusionOutput

__all__ = ['BertFusion', 'FusionOutput']
