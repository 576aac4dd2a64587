# The tests' tiny ALBEF on synthetic images with a timm CNN image encoder (random init): tokens are the
# 3 x 3 feature-map grid of tf_efficientnet_lite0 at 96 px (plus the pooled token), narrowed to 64-d.
_base_ = ['./tiny_synthetic.py']

image_size = 96
model = dict(
    image_backbone=dict(
        _delete_=True,
        type='TimmCNNBackbone',
        model_name='tf_efficientnet_lite0',
        img_size=image_size,
        out_channels=64,
    ),
)
train_dataloader = dict(dataset=dict(image_size=image_size))
val_dataloader = dict(dataset=dict(image_size=image_size))
test_dataloader = val_dataloader
