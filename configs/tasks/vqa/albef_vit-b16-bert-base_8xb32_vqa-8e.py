# VQA v2 fine-tuning of a pre-trained ALBEF / soft-mask model with ALBEF's answer decoder
# (PAPER.md "Downstream protocols"; ALBEF's configs/VQA.yaml, VQA.py, models/model_vqa.py):
# 384 px, batch 32 per GPU x 8, AdamW, weight decay 0.02, 8 epochs; momentum distillation (alpha
# 0.4 passed to the answer decoder's loss, as model_vqa.py does, warmed up over the first epoch
# by the runtime's AlphaWarmupHook, VQA.yaml warm_up: True; EMA 0.995); a 6-layer answer decoder
# initialised from the 6 fusion layers (decoder layer i <- fusion layer i, embeddings <- text
# embeddings, LM head <- pre-trained MLM head); answers ranked among the candidate list: top-128
# by the first token's probability, re-ranked by the full sequence's log-likelihood.
#
# Learning rate: the one ALBEF's VQA.py actually uses (param_scheduler in ../../_base_/schedules/vqa_8e.py). VQA.yaml asks for
# timm's CosineLRScheduler (lr 2e-5, min_lr 1e-6, epochs 8, warmup_lr 1e-5, warmup_epochs 4, and
# warmup_prefix=True by default). VQA.py steps it with t = i // 100 every 100 iterations of epoch 0
# (t = 0..4: 1e-5, 1.25e-5, 1.5e-5, 1.75e-5, then 2e-5 from iteration 400 to the end of the epoch)
# and with t = epoch + 4 at the start of every later epoch; the warm-up prefix removes the 4, so
# epoch e >= 1 runs at the constant 1e-6 + (2e-5 - 1e-6) (1 + cos(pi e / 8)) / 2: 1.93e-5,
# 1.72e-5, 1.41e-5, 1.05e-5, 6.86e-6, 3.78e-6, 1.72e-6 for epochs 1-7.
#
# Where this differs from ALBEF's released scripts, on purpose (each is an option):
# * its rank_answer adds the first token's log-probability twice; head.count_first_token_twice
#   =True reproduces it (default: the plain full-sequence log-likelihood).
# * its training images are flipped without touching the text; here a flip swaps left / right in
#   the question and the answers (CaptionAwareHorizontalFlip mode='swap').
#
# Data (https://visualqa.org/download.html + COCO 2014 images), converted once with
#   python tools/prepare_data.py vqa --questions <the v2_OpenEnded_mscoco_*_questions.json files> \
#       --annotations v2_mscoco_train2014_annotations.json v2_mscoco_val2014_annotations.json \
#       --out-dir data/vqa --answer-splits train2014 val2014 --min-count 9
# which writes data/vqa/vqa_{train2014,val2014,test-dev2015,test2015}.json and answer_list.json.
# The COCO images go under data/vqa/coco/{train2014,val2014,test2015}/. ALBEF's own
# answer_list.json (3,128 answers) can be used instead. Like ALBEF, the model trains on train +
# val and answers the test questions; tools/test.py writes the evaluation server's file
# (test_evaluator.result_file). ALBEF also trains on Visual Genome QA (its vg_qa.json, each
# answer weighted 0.5): add a VQADataset on it to train_dataloader.dataset.datasets (our reader
# gives a single VG answer weight 1). For a local score, train on vqa_train2014.json only and set
# val_dataloader / val_cfg / val_evaluator to val2014 as in the tiny config.
#
# Weights: `pretrained_ckpt` is a LOCAL vlreg pre-training checkpoint; only its image_backbone.*,
# text_backbone.*, fusion.* and mlm_head.* tensors are read.
_base_ = [
    '../../_base_/models/albef_vqa.py',
    '../../_base_/datasets/vqa.py',
    '../../_base_/schedules/vqa_8e.py',
    '../../_base_/default_runtime.py',
]
model = dict(
    image_backbone=dict(img_size={{_base_.image_size}}),
    head=dict(
        tokenizer={{_base_.answer_tokenizer}}, answer_max_length={{_base_.answer_max_length}}
    ),
)

# the runtime's custom_hooks keep AlphaWarmupHook (to the model's alpha 0.4): ALBEF's warm_up of alpha
default_hooks = dict(checkpoint=dict(type='VLCheckpointHook', interval=1, max_keep_ckpts=1))
