# VQA v2 on CPU in seconds: a tiny ALBEF with the answer decoder on the 3 real VQA v2 questions
# of ../shared/data/vl_task_samples (official questions.json + annotations.json, one COCO image).
# Train, validation and test read the same 3 questions: this checks the plumbing (official files
# -> pipeline -> decoder loss / candidate ranking -> VQAAccuracyMetric + server result file), not
# generalisation. The candidate list vqav2_samples_answer_list.json (next to this file) holds the
# 6 answers the annotators gave, built from the samples' annotations with
#   python tools/prepare_data.py vqa --questions ../shared/data/vl_task_samples/vqav2/questions.json \
#       --annotations ../shared/data/vl_task_samples/vqav2/annotations.json \
#       --out-dir work_dirs/vqa_samples --count-field answers --min-count 1
# Starts from random weights (model.pretrained=None); the decoder is still initialised from the
# (random) fusion layers.
# The recipe of albef_vit-b16-bert-base_8xb32_vqa-8e.py (its bases), shrunk:
_base_ = [
    '../../_base_/models/albef_vqa.py',
    '../../_base_/datasets/vqa.py',
    '../../_base_/schedules/vqa_8e.py',
    '../../_base_/default_runtime.py',
    '../../_base_/tiny_task.py',
]

data_root = '../shared/data/vl_task_samples'
image_root = 'images/vqav2'
ques_file, ann_file = 'vqav2/questions.json', 'vqav2/annotations.json'
answer_list = '{{ fileDirname }}/vqav2_samples_answer_list.json'
result_file = 'work_dirs/albef_vit-t-bert-t_1xb3_vqa-samples/vqa_samples_results.json'
image_size = {{_base_.tiny_image_size}}
tokenizer = {{_base_.tiny_tokenizer}}
answer_tokenizer = dict(type='BertTokenizer', path={{_base_.tiny_bert_path}}, add_sep=True)
answer_max_length = 8
max_epochs = 1

model = dict(
    image_backbone={{_base_.tiny_image_backbone}},
    text_backbone={{_base_.tiny_text_backbone}},
    fusion={{_base_.tiny_fusion}},
    head=dict(
        num_layers=2,
        num_heads=2,
        intermediate_size=128,
        max_position_embeddings=64,
        tokenizer=answer_tokenizer,
        answer_max_length=answer_max_length,
    ),
    answer_list=answer_list,
    pretrained=None,
)
train_pipeline = [
    dict(type='LoadImage'),
    dict(type='RandomResizedCrop', size=image_size, scale=(0.5, 1.0)),
    dict(
        type='CaptionAwareHorizontalFlip',
        p=0.5,
        mode='swap',
        keys=('caption', 'weighted_answers', 'answers'),
    ),
    dict(type='CleanCaption', max_words=30),
    dict(type='Tokenize', tokenizer=tokenizer, max_length=25),
    dict(
        type='Tokenize',
        tokenizer=answer_tokenizer,
        max_length=answer_max_length,
        keys=('weighted_answers',),
    ),
    dict(type='PackInputs', meta_keys={{_base_.meta_keys}}),
]
test_pipeline = [
    dict(type='LoadImage'),
    dict(type='Resize', size=image_size),
    dict(type='CleanCaption', max_words=50),
    dict(type='Tokenize', tokenizer=tokenizer, max_length=80),
    dict(type='PackInputs', meta_keys={{_base_.meta_keys}}),
]
_dataset = dict(
    type='VQADataset',
    data_root=data_root,
    ques_file=ques_file,
    ann_file=ann_file,
    image_root=image_root,
)
train_dataloader = dict(
    batch_size=3,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(_delete_=True, **_dataset, pipeline=train_pipeline),
)
val_dataloader = dict(
    _delete_=True,
    batch_size=3,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(**_dataset, pipeline=test_pipeline),
)
test_dataloader = dict(
    batch_size=3,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(_delete_=True, **_dataset, pipeline=test_pipeline),
)
val_cfg = dict(_delete_=True, type='ValLoop')
val_evaluator = dict(_delete_=True, type='VQAAccuracyMetric')
test_evaluator = dict(result_file=result_file)
optim_wrapper = dict(optimizer=dict(lr=1e-4))
param_scheduler = [
    dict(
        type='CosineAnnealingLR',
        eta_min=1e-6,
        by_epoch=True,
        begin=0,
        end=max_epochs,
        convert_to_iter_based=True,
    )
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(
        type='VLCheckpointHook', interval=1, max_keep_ckpts=1, save_best='vqa/acc', rule='greater'
    ),
)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='Visualizer', vis_backends=vis_backends)
