"""Word-level annotations of tokenised captions, for the soft-masked ITM (``TRANSFORMS``).

The soft-masked ITM of the paper (docs: PAPER.md, "Soft-masked ITM") picks one *word* of each
caption at random among its content words, merges the Grad-CAM maps of that word's wordpieces and
damps the image regions it points to. The model needs two things per token for that, computed here
once per sample: which whitespace word of the caption the token comes from (``word_ids``) and
whether the token belongs to a selectable content word (``content_mask``).

Stop words: NLTK's English list when its data is installed, otherwise the list kept in the repo
(``vlreg/datasets/stopwords_en.txt``). Position words (``POSITION_WORDS``: left, right, above,
below, top, ...) are removed from whichever list is used, so they stay content words; colours,
shapes and sizes are in neither list.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from mmengine.logging import print_log

from vlreg.registry import TRANSFORMS

from ..tokenizers import build_tokenizer
from .loading import describe_sample

__all__ = ['AnnotateWords', 'BUILTIN_STOPWORDS_FILE', 'POSITION_WORDS', 'load_stopwords']

BUILTIN_STOPWORDS_FILE = Path(__file__).resolve().parents[1] / 'stopwords_en.txt'

# Spatial words are what grounding captions are about; never treat them as stop words (NLTK's list
# holds 'above', 'below', 'up', 'down', 'over', 'under', 'between', ...).
POSITION_WORDS = frozenset(
    {
        'left',
        'right',
        'leftmost',
        'rightmost',
        'above',
        'below',
        'top',
        'bottom',
        'front',
        'behind',
        'back',
        'beside',
        'next',
        'near',
        'under',
        'over',
        'up',
        'down',
        'between',
        'inside',
        'outside',
        'middle',
        'center',
        'centre',
        'upper',
        'lower',
        'beneath',
        'underneath',
        'around',
        'across',
        'along',
        'far',
    }
)

_STRIP = string.punctuation + '\u2018\u2019\u201c\u201d'
_CACHE: dict[str, frozenset[str]] = {}


def _read_builtin() -> frozenset[str]:
    if 'builtin' not in _CACHE:
        if not BUILTIN_STOPWORDS_FILE.is_file():
            raise FileNotFoundError(
                f'the built-in stop-word list {BUILTIN_STOPWORDS_FILE} is '
                'missing (is vlreg installed with its package data?)'
            )
        lines = BUILTIN_STOPWORDS_FILE.read_text(encoding='utf-8').splitlines()
        _CACHE['builtin'] = frozenset(
            line.strip().lower() for line in lines if line.strip() and not line.startswith('#')
        )
    return _CACHE['builtin']


def _read_nltk() -> frozenset[str]:
    """NLTK's English stop words; ImportError / LookupError when NLTK or its data is missing."""
    from nltk.corpus import stopwords

    return frozenset(w.strip().lower() for w in stopwords.words('english'))


def load_stopwords(
    source: str | Iterable[str] | None = 'auto', keep: Iterable[str] = POSITION_WORDS
) -> tuple[frozenset[str], str]:
    """The stop-word set of :class:`AnnotateWords`.

    Args:
        source: ``'auto'`` (NLTK's English list when its data is installed, else the built-in
            list), ``'nltk'`` (NLTK or an error), ``'builtin'`` (``stopwords_en.txt``), ``None`` (no
            stop words), or an iterable of words.
        keep: words removed from the list (position words by default: they are content).

    Returns:
        ``(words, origin)``: the lower-case stop words and where they came from (``'nltk'``,
        ``'builtin'``, ``'none'`` or ``'custom'``).

    Raises:
        LookupError: ``source='nltk'`` and NLTK or its ``stopwords`` data is not installed.
        ValueError: an unknown source name.
    """
    if source is None:
        return frozenset(), 'none'
    if isinstance(source, str):
        if source not in ('auto', 'nltk', 'builtin'):
            raise ValueError(
                f"stopwords must be 'auto', 'nltk', 'builtin', None or a list of "
                f'words, got {source!r}'
            )
        words: frozenset[str] | None = None
        origin = 'builtin'
        if source in ('auto', 'nltk'):
            try:
                words, origin = _read_nltk(), 'nltk'
            except (ImportError, LookupError, OSError) as err:
                if source == 'nltk':
                    raise LookupError(
                        "AnnotateWords: stopwords='nltk' but NLTK's English stop words are not "
                        "available (install nltk and run nltk.download('stopwords'), or use "
                        f"stopwords='builtin' / 'auto'): {str(err).strip()[:200]}"
                    ) from err
                print_log(
                    "AnnotateWords: NLTK's stop words are not installed; using the built-in "
                    f'list {BUILTIN_STOPWORDS_FILE.name}',
                    logger='current',
                    level=10,
                )
        if words is None:
            words = _read_builtin()
    else:
        words, origin = frozenset(str(w).lower() for w in source), 'custom'
    return frozenset(words - {str(k).lower() for k in keep}), origin


def _has_alnum(text: str) -> bool:
    return any(c.isalnum() for c in text)


@TRANSFORMS.register_module()
class AnnotateWords:
    """Align token ids with caption words and mark the tokens of selectable content words.

    Runs after :class:`Tokenize` (and after :class:`CleanCaption` / ``CaptionAwareHorizontalFlip``,
    which change the words). The caption's words are its whitespace-separated words, the same
    indexing as ``gt_word_indices`` of the synthetic dataset. The tokenizer's ``encode_words``
    re-encodes them; the ids must equal those ``Tokenize`` stored (same tokenizer, caption
    unchanged since), otherwise this transform raises rather than misalign.

    A token is *content* (``content_mask`` 1) when it is not a special token (``[CLS]``,
    ``[SEP]``, ``[PAD]``, ``[MASK]``, ``[UNK]``, ...), has a letter or digit (not punctuation), and
    its word has a letter or digit and is not a stop word (compared lower-case, with outer
    punctuation and inner apostrophes stripped). Every wordpiece of a content word is content
    except punctuation pieces.
    A caption may have no content token at all (e.g. "it is what it is"); the model must then skip
    the sample. The masks refer to ``input_ids``; on the MLM view (``mlm_input_ids``), exclude the
    positions that ``MaskText`` replaced (``mlm_labels != -100``) as needed.

    Output keys per text key (following ``Tokenize``'s naming):

    * ``caption`` holding one string: ``word_ids`` and ``content_mask`` (aligned with
      ``input_ids``);
    * ``caption`` holding a list (retrieval samples): ``caption_word_ids`` and
      ``caption_content_mask``, lists aligned with ``caption_ids`` (``PackInputs`` pads them with
      -1 and 0);
    * any other key ``k``: ``k_word_ids`` and ``k_content_mask`` (aligned with ``k_ids``).

    Required keys: ``keys`` and their ids (``input_ids`` / ``caption_ids`` / ``<key>_ids``).
    Added keys: ``word_ids`` (int64 ``[L]``: the word index of each token, -1 for ``[CLS]``,
    ``[SEP]``, ``[PAD]``, ``[MASK]``), ``content_mask`` (int64 ``[L]``, 0 / 1), or their
    ``caption_`` / ``<key>_`` forms described above.

    Args:
        tokenizer: the ``TOKENIZERS`` config (or object) used by ``Tokenize``.
        stopwords: ``'auto'`` (NLTK's English list if its data is installed, else the built-in
            list), ``'nltk'``, ``'builtin'``, ``None`` (no stop-word filter) or a list of words.
        keep_words: never stop words (position words by default).
        keys: results keys holding text, as given to ``Tokenize``.

    Raises:
        KeyError: ``Tokenize`` has not run on a key.
        ValueError: the stored ids differ from the re-encoded words (another tokenizer, or the
            caption changed after ``Tokenize``).

    Example:
        >>> dict(type='AnnotateWords', tokenizer=dict(type='SyntheticTokenizer'), stopwords='auto')
    """

    def __init__(
        self,
        tokenizer: dict | Any,
        stopwords: str | Sequence[str] | None = 'auto',
        keep_words: Iterable[str] = POSITION_WORDS,
        keys: Sequence[str] = ('caption',),
    ) -> None:
        self.tokenizer = build_tokenizer(tokenizer)
        self.stopwords_source = (
            stopwords if stopwords is None or isinstance(stopwords, str) else 'custom'
        )
        self.stopwords, self.stopwords_origin = load_stopwords(stopwords, keep_words)
        self.keys = tuple(keys)
        self._no_content: set[int] | None = None
        self._piece_is_text: dict[int, bool] = {}

    def _special_ids(self) -> set[int]:
        if self._no_content is None:
            tok = self.tokenizer
            self._no_content = {int(i) for i in tok.all_special_ids} | {
                tok.cls_token_id,
                tok.sep_token_id,
                tok.pad_token_id,
                tok.mask_token_id,
                tok.unk_token_id,
            }
        return self._no_content

    def is_stopword(self, word: str) -> bool:
        """Whether ``word`` (a caption word, any case, punctuation around it) is a stop word."""
        norm = word.lower().strip(_STRIP)
        return (
            norm in self.stopwords or norm.replace("'", '').replace('\u2019', '') in self.stopwords
        )

    def _pieces_are_text(self, ids: Sequence[int]) -> list[bool]:
        missing = [i for i in dict.fromkeys(ids) if i not in self._piece_is_text]
        if missing:
            tokens = self.tokenizer.convert_ids_to_tokens(missing)
            for i, token in zip(missing, tokens):
                self._piece_is_text[i] = _has_alnum(token[2:] if token.startswith('##') else token)
        return [self._piece_is_text[i] for i in ids]

    def annotate(self, text: str, ids: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(word_ids, content_mask)`` of one text whose token ids are ``ids``.

        Raises:
            ValueError: ``ids`` are not the tokenizer's ids of ``text``.
        """
        ids = [int(i) for i in np.asarray(ids).reshape(-1)]
        words = text.split()
        new_ids, word_ids = self.tokenizer.encode_words(words, max_length=len(ids))
        if new_ids != ids:
            raise ValueError(
                f'AnnotateWords: the ids of {text!r} ({new_ids}) differ from the '
                f'stored ones ({ids}); use the tokenizer of Tokenize and run '
                'AnnotateWords right after it (nothing may change the text between)'
            )
        content_word = [_has_alnum(w) and not self.is_stopword(w) for w in words]
        specials = self._special_ids()
        pieces = self._pieces_are_text(ids)
        content = [
            w >= 0 and content_word[w] and i not in specials and piece
            for i, w, piece in zip(ids, word_ids, pieces)
        ]
        return np.asarray(word_ids, dtype=np.int64), np.asarray(content, dtype=np.int64)

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        for key in self.keys:
            if key not in results:
                raise KeyError(f'AnnotateWords: {describe_sample(results)} has no {key!r}')
            value = results[key]
            single = isinstance(value, str)
            ids_key = 'input_ids' if key == 'caption' and single else f'{key}_ids'
            if ids_key not in results:
                raise KeyError(
                    f'AnnotateWords: {describe_sample(results)} has no {ids_key!r}; '
                    'put Tokenize before AnnotateWords'
                )
            prefix = '' if key == 'caption' and single else f'{key}_'
            try:
                if single:
                    word_ids, content = self.annotate(value, results[ids_key])
                else:
                    texts, id_rows = list(value), list(results[ids_key])
                    if len(texts) != len(id_rows):
                        raise ValueError(
                            f'AnnotateWords: {len(texts)} texts in {key!r} but '
                            f'{len(id_rows)} rows in {ids_key!r}'
                        )
                    pairs = [self.annotate(t, r) for t, r in zip(texts, id_rows)]
                    word_ids, content = [p[0] for p in pairs], [p[1] for p in pairs]
            except ValueError as err:
                raise ValueError(f'{err} (in {describe_sample(results)})') from err
            results[f'{prefix}word_ids'] = word_ids
            results[f'{prefix}content_mask'] = content
        return results

    def __repr__(self) -> str:
        return (
            f'{type(self).__name__}(tokenizer={self.tokenizer!r}, '
            f'stopwords={self.stopwords_source!r} ({self.stopwords_origin}, '
            f'{len(self.stopwords)} words), keys={self.keys})'
        )
