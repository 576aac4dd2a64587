# The tiny VQA run of ./albef_vit-t-bert-t_1xb3_vqa-samples.py with the classifier head of
# ../vqa/albef-cls_vit-b16-bert-base_8xb32_vqa-8e.py (soft-score BCE over the 6 answers of
# vqav2_samples_answer_list.json). CPU, seconds; checks the plumbing only.
_base_ = ['./albef_vit-t-bert-t_1xb3_vqa-samples.py']

num_answers = 6  # the length of vqav2_samples_answer_list.json
model = dict(
    head=dict(
        _delete_=True,
        type='AnswerClassifierHead',
        num_answers=num_answers,
        mlp_hidden=None,
        soft_score='vqa',
    ),
    distill=False,
    init_head_from_fusion=False,
)
result_file = 'work_dirs/albef-cls_vit-t-bert-t_1xb3_vqa-samples/vqa_samples_results.json'
test_evaluator = dict(result_file=result_file)
