# Ablation on the real-photo model (configs/albef/albef_effnet-lite0-minilm_1xb64_flickr8k-real-1e.py:
# ImageNet EfficientNet-Lite0 with cached frozen stages + MiniLM 3 + 3, Flickr8k train + 800 images, 472
# iterations), ALBEF baseline. Every variant inherits the same two configs (two levels deep) and trains on
# the same data: the soft-mask pipeline (real_train_pipeline_softmask: word annotations, deterministic,
# unused without the soft mask), the same sampler (seeded by randomness.seed) and the same workers, so a
# seed gives every variant the same batches and MLM masks. The components draw from the model's torch
# stream only (word choice, ITM negatives), never from the data order's. tools/run_ablation.py
# --dataset flickr8k-real runs them (docs/ablation.md).
_base_ = ['../../albef/albef_effnet-lite0-minilm_1xb64_flickr8k-real-1e.py', '../_base_/method.py']
train_dataloader = dict(dataset={{_base_.real_train_dataset_softmask}})
