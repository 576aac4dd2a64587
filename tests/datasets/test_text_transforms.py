"""Caption cleaning, tokenisation (against ALBEF's stored ids) and MLM masking statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.conftest import minilm_path, shared_path
from vlreg.datasets import (
    BadSampleError,
    BertTokenizer,
    CleanCaption,
    MaskText,
    SyntheticTokenizer,
    Tokenize,
    build_tokenizer,
    clean_caption,
    synthetic_vocabulary,
)


@pytest.mark.parametrize(
    'raw, max_words, expected',
    [
        ('A Dog, running!', 30, 'a dog running'),
        ('The man\'s hat (red) is "big"?', 30, 'the mans hat red is big'),
        ('well-known black/white photo', 30, 'well known black white photo'),
        ('<person> rides a bike', 30, 'person rides a bike'),
        ('  lots   of\tspace \n', 30, 'lots of space'),
        ('a*b#c:d;e~f', 30, 'abcdef'),
        ('one two three four five', 3, 'one two three'),
        (
            'A child in a pink dress is climbing up a set of stairs in an entry way .',
            30,
            'a child in a pink dress is climbing up a set of stairs in an entry way',
        ),
        ('...', 30, ''),
    ],
)
def test_clean_caption(raw: str, max_words: int, expected: str) -> None:
    assert clean_caption(raw, max_words) == expected


def test_clean_caption_transform_lists_and_empty() -> None:
    out = CleanCaption(max_words=2)({'caption': ['A B C', 'D-E']})
    assert out['caption'] == ['a b', 'd e']
    with pytest.raises(BadSampleError, match=r"sample 7 \(entry 3 of 'ann.json'.*'!!!'"):
        CleanCaption()({'caption': '!!!', 'sample_idx': 7, 'ann_index': 3, 'ann_file': 'ann.json'})


def test_bert_tokenizer_reproduces_albef_input_ids() -> None:
    ref = torch.load(
        shared_path('albef_reference', 'inputs.pt'), map_location='cpu', weights_only=True
    )
    tokenizer = BertTokenizer(minilm_path())
    assert tokenizer._hf is None  # nothing loaded before first use
    encoded = [tokenizer.encode(c, max_length=25) for c in ref['captions']]
    length = max(len(e) for e in encoded)
    ids = torch.tensor([e + [tokenizer.pad_token_id] * (length - len(e)) for e in encoded])
    mask = torch.tensor([[1] * len(e) + [0] * (length - len(e)) for e in encoded])
    assert torch.equal(ids, ref['input_ids'])
    assert torch.equal(mask, ref['attention_mask'])
    tokens = tokenizer.convert_ids_to_tokens(encoded[1])
    assert tokens[0] == '[CLS]' and tokens[-2:] == ['windows', '##ill']
    assert tokenizer.decode(encoded[1]) == ref['captions'][1]
    assert (
        tokenizer.pad_token_id,
        tokenizer.cls_token_id,
        tokenizer.sep_token_id,
        tokenizer.mask_token_id,
        tokenizer.unk_token_id,
    ) == (0, 101, 102, 103, 100)
    assert tokenizer.vocab_size == 30522


def test_bert_tokenizer_truncation_and_sep() -> None:
    path = minilm_path()
    long_text = ' '.join(['dog'] * 40)
    plain = BertTokenizer(path).encode(long_text, max_length=25)
    assert len(plain) == 25 and plain[0] == 101 and 102 not in plain
    with_sep = BertTokenizer(path, add_sep=True).encode(long_text, max_length=25)
    assert len(with_sep) == 25 and with_sep[0] == 101 and with_sep[-1] == 102


def test_synthetic_tokenizer_vocabulary() -> None:
    tok = SyntheticTokenizer()
    words = synthetic_vocabulary()
    assert tok.vocab_size == 5 + len(words)
    assert tok.convert_ids_to_tokens(range(5)) == ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']
    ids = tok.encode('A large red circle to the left of a small blue square', max_length=25)
    assert ids[0] == tok.cls_token_id and tok.unk_token_id not in ids and len(ids) == 13
    assert tok.decode(ids) == 'a large red circle to the left of a small blue square'
    assert tok.encode('a zebra', 25) == [2, tok.vocab['a'], tok.unk_token_id]
    assert tok.encode('a b c d e f', 4) == [2, tok.vocab['a'], 1, 1]


def test_build_tokenizer_shares_instances() -> None:
    a = build_tokenizer(dict(type='SyntheticTokenizer'))
    assert build_tokenizer(dict(type='SyntheticTokenizer')) is a
    assert build_tokenizer(dict(type='SyntheticTokenizer', add_sep=True)) is not a
    t1 = Tokenize(tokenizer=dict(type='SyntheticTokenizer'))
    t2 = MaskText(tokenizer=dict(type='SyntheticTokenizer'))
    assert t1.tokenizer is t2.tokenizer is a


def test_tokenize_keys() -> None:
    tok = SyntheticTokenizer()
    t = Tokenize(tokenizer=tok, max_length=5)
    out = t({'caption': 'a red circle'})
    assert out['input_ids'].dtype == np.int64
    assert out['input_ids'].tolist() == [2, tok.vocab['a'], tok.vocab['red'], tok.vocab['circle']]
    out = t({'caption': ['a red circle', 'two shapes a blue star']})
    assert [x.tolist() for x in out['caption_ids']] == [
        [2, tok.vocab['a'], tok.vocab['red'], tok.vocab['circle']],
        [2, tok.vocab['two'], tok.vocab['shapes'], tok.vocab['a'], tok.vocab['blue']],
    ]
    with pytest.raises(BadSampleError, match='sample 4'):
        t({'caption': '   ', 'sample_idx': 4})


def test_mask_text_rates_match_bert_recipe() -> None:
    tok = SyntheticTokenizer()
    masker = MaskText(tokenizer=tok, mlm_probability=0.15)
    rng = np.random.default_rng(0)
    real = rng.integers(5, tok.vocab_size, size=(400, 100))
    specials = np.array([tok.cls_token_id] + [tok.sep_token_id] + [tok.pad_token_id] * 3)
    np.random.seed(123)
    n_real = n_chosen = n_mask = n_random = n_same = 0
    for row in real:
        ids = np.concatenate([[tok.cls_token_id], row, specials[1:]])
        out = masker({'input_ids': ids})
        mlm, labels = out['mlm_input_ids'], out['mlm_labels']
        is_special = np.isin(ids, specials)
        assert np.all(labels[is_special] == -100)
        assert np.array_equal(mlm[is_special], ids[is_special])
        chosen = labels != -100
        assert np.array_equal(labels[chosen], ids[chosen])
        assert np.array_equal(mlm[~chosen], ids[~chosen])
        replaced = chosen & (mlm != ids) & (mlm != tok.mask_token_id)
        assert not np.isin(mlm[replaced], tok.all_special_ids).any()
        n_real += int((~is_special).sum())
        n_chosen += int(chosen.sum())
        n_mask += int((mlm[chosen] == tok.mask_token_id).sum())
        n_random += int(replaced.sum())
        n_same += int((chosen & (mlm == ids)).sum())
    # a random replacement equals the original token with probability 1 / (number of non-specials)
    n_words = tok.vocab_size - len(tok.all_special_ids)
    expected = {'mask': 0.8, 'random': 0.1 * (1 - 1 / n_words), 'same': 0.1 + 0.1 / n_words}
    p = 0.15
    assert abs(n_chosen - n_real * p) < 5 * math.sqrt(n_real * p * (1 - p))
    for name, count in (('mask', n_mask), ('random', n_random), ('same', n_same)):
        q = expected[name]
        assert abs(count - n_chosen * q) < 5 * math.sqrt(n_chosen * q * (1 - q)), name
    assert n_mask + n_random + n_same == n_chosen


def test_mask_text_is_reproducible_from_numpy_seed() -> None:
    masker = MaskText(tokenizer=SyntheticTokenizer())
    ids = np.arange(2, 40)
    np.random.seed(5)
    a = masker({'input_ids': ids})
    np.random.seed(5)
    b = masker({'input_ids': ids})
    assert np.array_equal(a['mlm_input_ids'], b['mlm_input_ids'])
    assert np.array_equal(a['mlm_labels'], b['mlm_labels'])
