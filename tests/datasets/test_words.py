"""Word alignment (``encode_words``), content masks and stop-word sources of ``AnnotateWords``."""

from __future__ import annotations

import nltk
import numpy as np
import pytest
import torch

from tests.conftest import minilm_path, shared_path
from vlreg.datasets import (
    AnnotateWords,
    BertTokenizer,
    PackInputs,
    SyntheticShapesDataset,
    SyntheticTokenizer,
    Tokenize,
    load_stopwords,
)
from vlreg.datasets.synthetic import COLORS, RELATIONS, SHAPES, SIZES
from vlreg.registry import TRANSFORMS

COLOR_SHAPE_SIZE = (
    set(COLORS)
    | set(SHAPES)
    | set(SIZES)
    | {
        'black',
        'brown',
        'pink',
        'grey',
        'gray',
        'rectangle',
        'oval',
        'big',
        'tiny',
        'tall',
        'round',
    }
)
SIDES = {'left', 'right', 'above', 'below', 'top', 'bottom', 'front', 'behind', 'under', 'over'}


@pytest.fixture(scope='module')
def bert() -> BertTokenizer:
    return BertTokenizer(minilm_path())


@pytest.fixture(scope='module')
def synthetic_captions() -> list[str]:
    ds = SyntheticShapesDataset(num_images=40, image_size=32, mode='retrieval')
    return list(ds.captions)


def _check_alignment(tok, caption: str, max_length: int) -> tuple[list[int], list[int]]:
    words = caption.split()
    ids, word_ids = tok.encode_words(words, max_length)
    assert ids == tok.encode(' '.join(words), max_length) == tok.encode(caption, max_length)
    assert len(word_ids) == len(ids) and word_ids[0] == -1
    real = [w for w in word_ids if w >= 0]
    assert real == sorted(real) and all(0 <= w < len(words) for w in real)
    return ids, word_ids


def test_synthetic_tokenizer_word_ids(synthetic_captions: list[str]) -> None:
    tok = SyntheticTokenizer()
    for caption in synthetic_captions:
        ids, word_ids = _check_alignment(tok, caption, 25)
        # word-level: one token per word, in order
        assert word_ids == [-1] + list(range(len(caption.split())))
    ids, word_ids = _check_alignment(tok, 'a red circle, left!  of a zebra', 25)
    # punctuation marks are tokens of their own (outside the grammar: [UNK])
    assert tok.convert_ids_to_tokens(ids) == [
        '[CLS]',
        'a',
        'red',
        'circle',
        '[UNK]',
        'left',
        '[UNK]',
        'of',
        'a',
        '[UNK]',
    ]
    assert word_ids == [-1, 0, 1, 2, 2, 3, 3, 4, 5, 6]
    ids, word_ids = _check_alignment(tok, 'a b c d e f', 4)
    assert word_ids == [-1, 0, 1, 2]
    sep = SyntheticTokenizer(add_sep=True)
    ids, word_ids = _check_alignment(sep, 'a red circle', 25)
    assert ids[-1] == sep.sep_token_id and word_ids == [-1, 0, 1, 2, -1]


def test_bert_word_ids_on_albef_reference_captions(bert: BertTokenizer) -> None:
    ref = torch.load(
        shared_path('albef_reference', 'inputs.pt'), map_location='cpu', weights_only=True
    )
    for row, caption in enumerate(ref['captions']):
        ids, word_ids = _check_alignment(bert, caption, 25)
        assert ids == ref['input_ids'][row, : len(ids)].tolist()
        assert int(ref['attention_mask'][row].sum()) == len(ids)
        # independent check: the fast tokenizer's own word ids of the pre-split words
        enc = bert.hf(caption.split(), is_split_into_words=True, add_special_tokens=False)
        assert word_ids[1:] == enc.word_ids()
    ids, word_ids = bert.encode_words(ref['captions'][1].split(), 25)
    tokens = bert.convert_ids_to_tokens(ids)
    assert tokens[-2:] == ['windows', '##ill']
    assert word_ids[-2] == word_ids[-1] == ref['captions'][1].split().index('windowsill')


def test_bert_word_ids_specials_truncation_and_punctuation(bert: BertTokenizer) -> None:
    ids, word_ids = _check_alignment(bert, "a [MASK] dog, on the man's windowsill!", 25)
    tokens = bert.convert_ids_to_tokens(ids)
    assert tokens[:4] == ['[CLS]', 'a', '[MASK]', 'dog']
    # [MASK] written in the text has no word; ',' belongs to the word 'dog,'
    assert word_ids[:5] == [-1, 0, -1, 2, 2]
    assert word_ids[tokens.index('##ill')] == word_ids[tokens.index('windows')] == 6
    long = ' '.join(['windowsill'] * 20)
    ids, word_ids = _check_alignment(bert, long, 25)
    assert len(ids) == 25 and word_ids[-1] == 11  # 12th word cut after its first piece
    with_sep = BertTokenizer(minilm_path(), add_sep=True)
    ids, word_ids = _check_alignment(with_sep, long, 25)
    assert ids[-1] == with_sep.sep_token_id and word_ids[-1] == -1 and word_ids[-2] == 11
    _check_alignment(bert, 'Café  naïve  İstanbul x+y', 25)


def _content_words(annotator: AnnotateWords, caption: str, ids: list[int]) -> list[str]:
    word_ids, content = annotator.annotate(caption, ids)
    words = caption.split()
    return [words[w] for w, c in zip(word_ids, content) if c]


def test_content_mask_bert(bert: BertTokenizer) -> None:
    annotator = AnnotateWords(bert, stopwords='builtin')
    caption = "a [MASK] red circle , to the left of the man's big blue windowsill !"
    ids = bert.encode(caption, 40)
    word_ids, content = annotator.annotate(caption, ids)
    assert word_ids.dtype == np.int64 and content.dtype == np.int64
    tokens = bert.convert_ids_to_tokens(ids)
    never = set(bert.all_special_ids)
    for token, i, w, c in zip(tokens, ids, word_ids, content):
        if i in never or not any(ch.isalnum() for ch in token):
            assert c == 0, token
        if c:
            assert w >= 0 and not annotator.is_stopword(caption.split()[w])
    marked = {tokens[k] for k in np.flatnonzero(content)}
    # wordpieces of a content word are content, except its punctuation pieces ("man's")
    assert marked == {'red', 'circle', 'left', 'man', 's', 'big', 'blue', 'windows', '##ill'}
    assert content[tokens.index("'")] == 0


def test_content_mask_synthetic(synthetic_captions: list[str]) -> None:
    tok = SyntheticTokenizer()
    annotator = AnnotateWords(tok)
    for caption in synthetic_captions:
        ids = tok.encode(caption, 25)
        word_ids, content = annotator.annotate(caption, ids)
        words = caption.split()
        for k in range(1, len(ids)):
            word = words[word_ids[k]]
            if word in COLOR_SHAPE_SIZE | SIDES | {'shapes', 'picture', 'image', 'two', 'three'}:
                assert content[k] == 1, (caption, word)
            if word in {'a', 'the', 'of', 'to', 'is', 'and', 'there', 'in', 'also'}:
                assert content[k] == 0, (caption, word)
        assert content[0] == 0 and word_ids[0] == -1
    ids = tok.encode('a zebra , red', 25)  # [UNK] and punctuation are not content
    assert annotator.annotate('a zebra , red', ids)[1].tolist() == [0, 0, 0, 0, 1]


def test_builtin_stopwords_are_function_words_only() -> None:
    words, origin = load_stopwords('builtin')
    assert origin == 'builtin' and {'a', 'an', 'the', 'of', 'is', 'and', 'to', 'its'} <= words
    relation_words = {w for phrase in RELATIONS.values() for w in phrase.split()} - {
        'to',
        'the',
        'of',
    }
    assert not words & (COLOR_SHAPE_SIZE | SIDES | relation_words)
    assert load_stopwords(None) == (frozenset(), 'none')
    custom, origin = load_stopwords(['The', 'left', 'dog'])
    assert origin == 'custom' and custom == {'the', 'dog'}  # position words are always kept
    with pytest.raises(ValueError, match='stopwords must be'):
        load_stopwords('spacy')


class _FakeStopwords:
    def __init__(self, words: list[str] | None) -> None:
        self._words = words

    def words(self, language: str) -> list[str]:
        assert language == 'english'
        if self._words is None:
            raise LookupError("Resource 'stopwords' not found.")
        return list(self._words)


def test_nltk_stopwords_and_builtin_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    tok = SyntheticTokenizer()
    caption = 'a red circle above a blue square'
    ids = tok.encode(caption, 25)
    monkeypatch.setattr(nltk.corpus, 'stopwords', _FakeStopwords(None))
    auto = AnnotateWords(tok, stopwords='auto')
    assert auto.stopwords_origin == 'builtin'
    assert auto.stopwords == load_stopwords('builtin')[0]
    with pytest.raises(LookupError, match="stopwords='nltk'"):
        AnnotateWords(tok, stopwords='nltk')
    monkeypatch.setattr(
        nltk.corpus, 'stopwords', _FakeStopwords(['a', 'the', 'above', 'below', 'circle'])
    )
    for source in ('auto', 'nltk'):
        annotator = AnnotateWords(tok, stopwords=source)
        assert annotator.stopwords_origin == 'nltk'
        assert annotator.stopwords == {'a', 'the', 'circle'}  # position words removed
        assert _content_words(annotator, caption, ids) == ['red', 'above', 'blue', 'square']
    builtin = AnnotateWords(tok, stopwords='builtin')
    assert builtin.stopwords_origin == 'builtin'
    assert _content_words(builtin, caption, ids) == ['red', 'circle', 'above', 'blue', 'square']
    none = AnnotateWords(tok, stopwords=None)
    assert _content_words(none, caption, ids) == caption.split()


def test_real_nltk_matches_environment() -> None:
    try:
        nltk.corpus.stopwords.words('english')
        expected = 'nltk'
    except LookupError:
        expected = 'builtin'
    assert AnnotateWords(SyntheticTokenizer()).stopwords_origin == expected


def test_annotate_words_transform_pretrain_and_retrieval() -> None:
    cfg = dict(type='SyntheticTokenizer')
    tokenize = Tokenize(cfg)
    annotate = TRANSFORMS.build(dict(type='AnnotateWords', tokenizer=cfg))
    assert isinstance(annotate, AnnotateWords) and annotate.tokenizer is tokenize.tokenizer
    out = annotate(tokenize({'caption': 'a red circle to the left of a star'}))
    assert out['word_ids'].tolist() == [-1, 0, 1, 2, 3, 4, 5, 6, 7, 8]
    assert out['content_mask'].tolist() == [0, 0, 1, 1, 0, 0, 1, 0, 0, 1]
    captions = ['a red circle', 'there is a large blue star below a green cross']
    out = annotate(tokenize({'caption': list(captions)}))
    assert [w.tolist() for w in out['caption_word_ids']] == [[-1, 0, 1, 2], [-1] + list(range(10))]
    assert [len(m) for m in out['caption_content_mask']] == [4, 11]
    packed = PackInputs()(dict(out, img=np.zeros((4, 4, 3), np.uint8)))['inputs']
    assert packed['caption_ids'].shape == packed['caption_word_ids'].shape == (2, 11)
    assert packed['caption_word_ids'][0].tolist() == [-1, 0, 1, 2] + [-1] * 7
    assert packed['caption_content_mask'][0].tolist() == [0, 0, 1, 1] + [0] * 7
    assert packed['caption_ids'][0, 4:].tolist() == [0] * 7


def test_annotate_words_refuses_misaligned_ids() -> None:
    tok = SyntheticTokenizer()
    results = Tokenize(tok)({'caption': 'a red circle to the left of a star', 'sample_idx': 3})
    results['caption'] = 'a red circle to the right of a star'  # changed after Tokenize
    with pytest.raises(ValueError, match='differ from the stored ones.*sample 3'):
        AnnotateWords(tok)(results)
    with pytest.raises(KeyError, match='put Tokenize before AnnotateWords'):
        AnnotateWords(tok)({'caption': 'a red circle'})


def test_dataset_word_ids_match_gt_word_indices() -> None:
    cfg = dict(type='SyntheticTokenizer')
    ds = SyntheticShapesDataset(
        num_images=10,
        image_size=32,
        mode='pretrain',
        pipeline=[
            dict(type='Tokenize', tokenizer=cfg),
            dict(type='AnnotateWords', tokenizer=cfg),
            dict(type='PackInputs'),
        ],
    )
    for i in range(len(ds)):
        sample = ds[i]
        inputs, meta = sample['inputs'], sample['data_samples'].metainfo
        words = meta['caption'].split()
        for named in meta['gt_word_indices']:
            for w in named:  # every word naming an object is a content word
                positions = np.flatnonzero(inputs['word_ids'].numpy() == w)
                assert len(positions) == 1 and words[w] in COLOR_SHAPE_SIZE
                assert inputs['content_mask'][positions[0]] == 1
