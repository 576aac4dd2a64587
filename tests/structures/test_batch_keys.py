"""One home for the key names and the padding rule (issue 8, item 3): ``vlreg.structures``.

The expected values are written out here (docs/architecture.md, "One batch"), not read from the
code under test; the identity checks make sure the pipeline and the preprocessor use this one
definition rather than copies.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vlreg.structures import batch_keys as bk


@pytest.mark.parametrize(
    'key,expected',
    [
        ('input_ids', 7),
        ('mlm_input_ids', 7),
        ('caption_ids', 7),
        ('my_token_ids', 7),
        ('mlm_labels', -100),
        ('my_labels', -100),
        ('word_ids', -1),
        ('caption_word_ids', -1),
        ('sub_word_ids', -1),
        ('content_mask', 0),
        ('caption_content_mask', 0),
        ('attention_mask', 0),
        ('x_mask', 0),
    ],
)
def test_text_pad_value_rule(key: str, expected: int) -> None:
    assert bk.text_pad_value(key, 7) == expected
    assert bk.text_pad_value(key, 7, {key: 5}) == 5
    assert bk.text_pad_value(key, 7, {'other': 5}) == expected


def test_default_pad_values_table() -> None:
    assert bk.DEFAULT_PAD_VALUES == {
        'input_ids': None,
        'mlm_input_ids': None,
        'caption_ids': None,
        'mlm_labels': -100,
        'word_ids': -1,
        'caption_word_ids': -1,
        'content_mask': 0,
        'caption_content_mask': 0,
        'attention_mask': 0,
    }
    # the table agrees with the suffix rule wherever it names a number
    for key, value in bk.DEFAULT_PAD_VALUES.items():
        assert bk.text_pad_value(key, 7) == (7 if value is None else value), key
    assert (bk.IGNORE_LABEL, bk.NO_WORD, bk.MASK_PAD) == (-100, -1, 0)


@pytest.mark.parametrize(
    'key,is_image,batch',
    [
        ('img', True, 'image'),
        ('img_aug', True, 'image_aug'),
        ('img_view2', True, 'image_view2'),
        ('img_path', False, None),
        ('img_shape', False, None),
        ('image', False, None),
        ('imgs', False, None),
        ('caption', False, None),
    ],
)
def test_pipeline_image_keys(key: str, is_image: bool, batch: str | None) -> None:
    assert bk.is_pipeline_image_key(key) is is_image
    if is_image:
        assert bk.batch_image_key(key) == batch
        assert bk.pipeline_image_key(batch) == key
        assert bk.is_batch_image_key(batch)
    assert bk.boxes_key('img') == 'gt_bboxes' and bk.boxes_key('img_aug') == 'gt_bboxes_aug'


def test_batch_key_kinds() -> None:
    assert [
        k
        for k in ('image', 'image_aug', 'input_ids', 'caption_ids', 'word_ids')
        if bk.is_batch_image_key(k)
    ] == ['image', 'image_aug']
    assert [
        k
        for k in ('caption_ids', 'caption_word_ids', 'captions', 'input_ids')
        if bk.is_caption_key(k)
    ] == ['caption_ids', 'caption_word_ids']


def test_views() -> None:
    assert bk.IMAGE_VIEWS == ('image', 'image_aug') and bk.TEXT_VIEWS == ('text', 'text_masked')
    assert [bk.view_key('image_embed', v) for v in bk.IMAGE_VIEWS] == [
        'image_embed',
        'image_embed_aug',
    ]
    assert [bk.view_key('text_tokens', v) for v in bk.TEXT_VIEWS] == [
        'text_tokens',
        'text_tokens_masked',
    ]
    assert [bk.view_suffix(v) for v in ('image', 'image_aug', 'text_masked')] == [
        '',
        'aug',
        'masked',
    ]
    assert [bk.view_batch_key(v) for v in ('image', 'image_aug', 'text', 'text_masked')] == [
        'image',
        'image_aug',
        'input_ids',
        'mlm_input_ids',
    ]


def test_missing_view_messages_name_the_transform() -> None:
    # the pretrainer's wording before the rules moved here
    assert bk.missing_view_message('image_aug') == (
        "a loss uses the view 'image_aug' but the batch has no 'image_aug': add "
        "dict(type='ImageView', out_key='img_aug') to the train pipeline"
    )
    assert bk.missing_view_message('text_masked') == (
        "a loss uses the view 'text_masked' but the batch has no mlm_input_ids: add "
        "dict(type='MaskText', ...) to the train pipeline"
    )


def test_pipeline_and_preprocessor_share_the_one_definition() -> None:
    from vlreg.datasets.transforms import formatting
    from vlreg.models import data_preprocessor

    assert formatting.text_pad_value is bk.text_pad_value
    assert (
        formatting.DEFAULT_TEXT_KEYS,
        formatting.DEFAULT_META_KEYS,
        formatting.DEFAULT_DATA_KEYS,
    ) == (bk.DEFAULT_TEXT_KEYS, bk.DEFAULT_META_KEYS, bk.DEFAULT_DATA_KEYS)
    assert data_preprocessor.DEFAULT_PAD_VALUES is bk.DEFAULT_PAD_VALUES


def test_pack_and_preprocess_pad_a_custom_key_alike() -> None:
    """``PackInputs`` (a list-valued key) and ``VLDataPreprocessor`` (per-sample rows) pad an
    unlisted ``*_labels`` key with -100 and a ``*_word_ids`` key with -1."""
    from vlreg.datasets.transforms import PackInputs
    from vlreg.models.data_preprocessor import VLDataPreprocessor

    pack = PackInputs(text_keys=('input_ids', 'tag_labels', 'caption_x_word_ids'), pad_token_id=3)
    img = np.zeros((4, 4, 3), np.uint8)
    packed = pack(
        dict(
            img=img,
            input_ids=np.array([1, 2]),
            tag_labels=np.array([5, 6]),
            caption_x_word_ids=[[0], [0, 1, 1]],
        )
    )['inputs']
    assert packed['caption_x_word_ids'].tolist() == [[0, -1, -1], [0, 1, 1]]
    batch = dict(
        inputs=dict(
            input_ids=[torch.tensor([1, 2]), torch.tensor([1])],
            tag_labels=[torch.tensor([5, 6]), torch.tensor([5])],
            sub_word_ids=[torch.tensor([0, 1]), torch.tensor([0])],
        ),
        data_samples=None,
    )
    out = VLDataPreprocessor(pad_token_id=3)(batch)['inputs']
    assert out['input_ids'].tolist() == [[1, 2], [1, 3]]
    assert out['attention_mask'].tolist() == [[1, 1], [1, 0]]
    assert out['tag_labels'].tolist() == [[5, 6], [5, -100]]
    assert out['sub_word_ids'].tolist() == [[0, 1], [0, -1]]


def test_old_import_paths_still_work() -> None:
    from vlreg.datasets import build_tokenizer as from_datasets
    from vlreg.datasets.tokenizers import build_tokenizer as from_tokenizers
    from vlreg.evaluation import normalize_answer as from_package
    from vlreg.evaluation.vqa import CONTRACTIONS, NUMBER_WORDS, normalize_punctuation
    from vlreg.evaluation.vqa import normalize_answer as from_metric
    from vlreg.structures import vqa_answers
    from vlreg.utils.tokenizer_cache import build_tokenizer

    assert from_datasets is from_tokenizers is build_tokenizer
    assert from_package is from_metric is vqa_answers.normalize_answer
    assert normalize_punctuation is vqa_answers.normalize_punctuation
    assert NUMBER_WORDS is vqa_answers.NUMBER_WORDS and CONTRACTIONS is vqa_answers.CONTRACTIONS
    assert vqa_answers.normalize_answer('Two dogs.') == '2 dogs'
