# ALBEF's VQA v2 recipe (model with the answer decoder, data, schedule) shared by the VQA configs;
# see configs/tasks/vqa/albef_vit-b16-bert-base_8xb32_vqa-8e.py for the protocol and the data.
# placeholder: your pre-training checkpoint
pretrained_ckpt = 'work_dirs/albef_pretrain/epoch_30.pth'
data_root = 'data/vqa'
image_root = 'coco'
train_files = ['vqa_train2014.json', 'vqa_val2014.json']
test_file = 'vqa_test2015.json'
answer_list = 'data/vqa/answer_list.json'
result_file = 'work_dirs/albef_vit-b16-bert-base_8xb32_vqa-8e/vqa_test2015_results.json'
image_size = 384
# local bert-base-uncased folder: only its vocabulary is read (weights come from the checkpoint)
bert_path = 'data/bert-base-uncased'
tokenizer = dict(type='BertTokenizer', path=bert_path)
# answers are "[CLS] answer [SEP]" (ALBEF appends [SEP] as end token)
answer_tokenizer = dict(type='BertTokenizer', path=bert_path, add_sep=True)
answer_max_length = 16  # ALBEF does not truncate answers; longer ones are rare
vocab_size = 30522
max_epochs = 8
lr = 2e-5
meta_keys = ('sample_idx', 'image_id', 'ori_image_id', 'img_path', 'caption', 'ann_index',
             'question', 'question_id', 'answers', 'weighted_answers', 'answer_weights',
             'weighted_answers_ids', 'question_type', 'answer_type', 'multiple_choice_answer')

model = dict(
    type='ALBEFVQA',
    image_backbone=dict(type='TimmViTBackbone', model_name='vit_base_patch16_224',
                        img_size=image_size, drop_path_rate=0.0),
    text_backbone=dict(type='BertTextBackbone', vocab_size=vocab_size, hidden_size=768,
                       num_layers=6, num_heads=12, intermediate_size=3072),
    fusion=dict(type='BertFusion', hidden_size=768, encoder_width=768, num_layers=6, num_heads=12,
                intermediate_size=3072, layer_offset=6),
    head=dict(type='AnswerDecoderHead', num_layers=6, num_heads=12, intermediate_size=3072,
              tokenizer=answer_tokenizer, answer_max_length=answer_max_length, k_test=128,
              label_smoothing=0.0, count_first_token_twice=False),
    answer_list=answer_list,
    distill=True,
    momentum=0.995,
    alpha=0.4,
    init_head_from_fusion=True,
    pretrained=pretrained_ckpt,
    data_preprocessor=dict(type='VLDataPreprocessor'),
)

# ALBEF's VQA transform: RandomResizedCrop(384, 0.5-1) + flip + RandAugment(2, 7); questions
# cleaned as ALBEF's pre_question (30 words in training, 50 at test), 25 tokens in training.
train_pipeline = [
    dict(type='LoadImage'),
    dict(type='RandomResizedCrop', size=image_size, scale=(0.5, 1.0)),
    dict(type='CaptionAwareHorizontalFlip', p=0.5, mode='swap',
         keys=('caption', 'weighted_answers', 'answers')),
    dict(type='RandAugment', num_ops=2, magnitude=7),
    dict(type='CleanCaption', max_words=30),
    dict(type='Tokenize', tokenizer=tokenizer, max_length=25),
    dict(type='Tokenize', tokenizer=answer_tokenizer, max_length=answer_max_length,
         keys=('weighted_answers',)),
    dict(type='PackInputs', meta_keys=meta_keys),
]
test_pipeline = [
    dict(type='LoadImage'),
    dict(type='Resize', size=image_size),
    dict(type='CleanCaption', max_words=50),
    dict(type='Tokenize', tokenizer=tokenizer, max_length=80),
    dict(type='PackInputs', meta_keys=meta_keys),
]
train_dataloader = dict(
    batch_size=32, num_workers=8, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'), drop_last=True,
    dataset=dict(type='ConcatDataset', datasets=[
        dict(type='VQADataset', data_root=data_root, ques_file=train_files[0],
             image_root=image_root, skip_bad_samples=True, pipeline=train_pipeline),
        dict(type='VQADataset', data_root=data_root, ques_file=train_files[1],
             image_root=image_root, skip_bad_samples=True, pipeline=train_pipeline),
    ]))
test_dataloader = dict(
    batch_size=16, num_workers=8, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='VQADataset', data_root=data_root, ques_file=test_file,
                 image_root=image_root, skip_bad_samples=True, pipeline=test_pipeline))
test_evaluator = dict(type='VQAAccuracyMetric', gt_processing='official', result_file=result_file)
# ALBEF: no validation during fine-tuning (train + val are both training data)
val_dataloader = None
val_cfg = None
val_evaluator = None

optim_wrapper = dict(
    type='OptimWrapper',
    constructor='VLOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=lr, weight_decay=0.02),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0, flat_decay_mult=0.0,
                       bypass_duplicate=True),
)
# ALBEF's VQA schedule (see the top): epoch 0 warms up from 1e-5 (0.5 x lr) in 4 steps of 100
# iterations, each a ConstantLR factor (MMEngine's ConstantLR restores the rate at step end - 1,
# hence end = begin + 101); the cosine then sets one rate per epoch (by_epoch, not converted to
# iterations): 2e-5 for the rest of epoch 0, then 1.93e-5 ... 1.72e-6.
warmup_factors = (0.5, 0.625, 0.75, 0.875)
param_scheduler = [
    dict(type='ConstantLR', factor=f, by_epoch=False, begin=100 * k, end=100 * k + 101)
    for k, f in enumerate(warmup_factors)
] + [
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=0, end=max_epochs),
]
train_cfg = dict(type='ResumableEpochBasedTrainLoop', max_epochs=max_epochs)
test_cfg = dict(type='TestLoop')
auto_scale_lr = dict(base_batch_size=256, enable=False)
