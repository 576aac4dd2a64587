# VQA v2 (https://visualqa.org/download.html + COCO 2014 images) converted by tools/prepare_data.py vqa;
# see configs/tasks/vqa/albef_vit-b16-bert-base_8xb32_vqa-8e.py. Like ALBEF, training reads train +
# val and the test questions are answered for the evaluation server.
data_root = 'data/vqa'
image_root = 'coco'
train_files = ['vqa_train2014.json', 'vqa_val2014.json']
test_file = 'vqa_test2015.json'
result_file = 'work_dirs/albef_vit-b16-bert-base_8xb32_vqa-8e/vqa_test2015_results.json'
image_size = 384
# local bert-base-uncased folder: only its vocabulary is read (weights come from the checkpoint)
bert_path = 'data/bert-base-uncased'
tokenizer = dict(type='BertTokenizer', path=bert_path)
# answers are "[CLS] answer [SEP]" (ALBEF appends [SEP] as end token)
answer_tokenizer = dict(type='BertTokenizer', path=bert_path, add_sep=True)
answer_max_length = 16  # ALBEF does not truncate answers; longer ones are rare
meta_keys = (
    'sample_idx',
    'image_id',
    'ori_image_id',
    'img_path',
    'caption',
    'ann_index',
    'question',
    'question_id',
    'answers',
    'weighted_answers',
    'answer_weights',
    'weighted_answers_ids',
    'question_type',
    'answer_type',
    'multiple_choice_answer',
)
# ALBEF's VQA transform: RandomResizedCrop(384, 0.5-1) + flip + RandAugment(2, 7); questions
# cleaned as ALBEF's pre_question (30 words in training, 50 at test), 25 tokens in training.
train_pipeline = [
    dict(type='LoadImage'),
    dict(type='RandomResizedCrop', size=image_size, scale=(0.5, 1.0)),
    dict(
        type='CaptionAwareHorizontalFlip',
        p=0.5,
        mode='swap',
        keys=('caption', 'weighted_answers', 'answers'),
    ),
    dict(type='RandAugment', num_ops=2, magnitude=7),
    dict(type='CleanCaption', max_words=30),
    dict(type='Tokenize', tokenizer=tokenizer, max_length=25),
    dict(
        type='Tokenize',
        tokenizer=answer_tokenizer,
        max_length=answer_max_length,
        keys=('weighted_answers',),
    ),
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
    batch_size=32,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    drop_last=True,
    dataset=dict(
        type='ConcatDataset',
        datasets=[
            dict(
                type='VQADataset',
                data_root=data_root,
                ques_file=train_files[0],
                image_root=image_root,
                skip_bad_samples=True,
                pipeline=train_pipeline,
            ),
            dict(
                type='VQADataset',
                data_root=data_root,
                ques_file=train_files[1],
                image_root=image_root,
                skip_bad_samples=True,
                pipeline=train_pipeline,
            ),
        ],
    ),
)
test_dataloader = dict(
    batch_size=16,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='VQADataset',
        data_root=data_root,
        ques_file=test_file,
        image_root=image_root,
        skip_bad_samples=True,
        pipeline=test_pipeline,
    ),
)
test_evaluator = dict(type='VQAAccuracyMetric', gt_processing='official', result_file=result_file)
# ALBEF: no validation during fine-tuning (train + val are both training data)
val_dataloader = None
val_evaluator = None
