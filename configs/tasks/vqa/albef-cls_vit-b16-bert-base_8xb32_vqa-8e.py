# VQA v2 with the classifier head instead of ALBEF's answer decoder: an MLP on the fused [CLS]
# (768 -> 1536 -> GELU -> LayerNorm -> num_answers, UNITER's head) trained with binary
# cross-entropy on soft scores (BUTD / VL-BERT: 0.3 / 0.6 / 0.9 / 1 for 1 / 2 / 3 / >= 4 of 10
# annotators, head.soft_score='vqa'; 'min3' = min(n / 3, 1)) over the answer list; the answer is
# the highest-scoring one. Everything else is ALBEF's VQA recipe (the parent config), except
# momentum distillation, off here as in BUTD / UNITER (model.distill=True enables it: the target
# becomes (1 - alpha) * soft + alpha * sigmoid(momentum logits)).
#
# num_answers must equal the length of the answer list (the model checks it when it reads the
# list): 3,128 for ALBEF's answer_list.json; tools/prepare_data.py vqa prints it for its own list
# (3,129 with BUTD's rule: --answer-splits train2014 val2014 --min-count 9).
_base_ = ['./albef_vit-b16-bert-base_8xb32_vqa-8e.py']

num_answers = 3128
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
result_file = 'work_dirs/albef-cls_vit-b16-bert-base_8xb32_vqa-8e/vqa_test2015_results.json'
test_evaluator = dict(result_file=result_file)
