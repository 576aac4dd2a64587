"""Text transforms: ALBEF's caption cleaning, tokenisation and MLM masking (``TRANSFORMS``)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from vlreg.registry import TRANSFORMS

from ..tokenizers import build_tokenizer
from .loading import BadSampleError, describe_sample

__all__ = ['CleanCaption', 'MaskText', 'Tokenize', 'clean_caption']

_DROP = re.compile(r'[,.\'!?"()*#:;~]')
_SPACES = re.compile(r'\s+')


def clean_caption(text: str, max_words: int | None = 30) -> str:
    """ALBEF's caption normalisation.

    Lower-case; delete ``, . ' ! ? " ( ) * # : ;`` and ``~``; ``-`` and ``/`` become spaces;
    ``<person>`` becomes ``person``; runs of white space become one space; strip; keep the first
    ``max_words`` words (all of them when ``max_words`` is None).
    """
    text = _DROP.sub('', text.lower())
    text = text.replace('-', ' ').replace('/', ' ').replace('<person>', 'person')
    text = _SPACES.sub(' ', text).strip()
    if max_words is not None:
        words = text.split(' ')
        if len(words) > max_words:
            text = ' '.join(words[:max_words])
    return text


def _check_text(results: dict[str, Any], key: str) -> str | list[str]:
    if key not in results:
        raise KeyError(f'{describe_sample(results)} has no {key!r} to process')
    value = results[key]
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise TypeError(
        f'{describe_sample(results)}: {key!r} must be a string or a list of strings, '
        f'got {type(value).__name__}'
    )


@TRANSFORMS.register_module()
class CleanCaption:
    """Normalise captions as ALBEF does (see :func:`clean_caption`).

    Required keys: ``keys`` (a string, or a list of strings for retrieval samples).
    Modified keys: the same.

    Args:
        max_words: keep at most this many words (None: no limit).
        keys: the results keys holding text.

    Raises:
        BadSampleError: a caption is empty after cleaning (the message names the sample).

    Example:
        >>> dict(type='CleanCaption', max_words=30)
    """

    def __init__(self, max_words: int | None = 30, keys: Sequence[str] = ('caption',)) -> None:
        self.max_words = max_words
        self.keys = tuple(keys)

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        for key in self.keys:
            value = _check_text(results, key)
            texts = [value] if isinstance(value, str) else value
            cleaned = [clean_caption(t, self.max_words) for t in texts]
            for raw, text in zip(texts, cleaned):
                if not text:
                    raise BadSampleError(
                        f'CleanCaption: {describe_sample(results)} has a '
                        f'{key!r} that is empty after cleaning: {raw!r}'
                    )
            results[key] = cleaned[0] if isinstance(value, str) else cleaned
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(max_words={self.max_words}, keys={self.keys})'


@TRANSFORMS.register_module()
class Tokenize:
    """Turn text into token ids (ALBEF: ``[CLS]`` first, no trailing ``[SEP]``, at most 25 ids).

    Output keys: ``caption`` -> ``input_ids`` when it is a string and ``caption_ids`` when it is a
    list (retrieval samples: one id array per caption); any other key ``k`` -> ``k_ids``.

    Required keys: ``keys``. Added keys: ``input_ids`` (int64 ``[L]``) and / or ``caption_ids``
    (list of int64 ``[L_j]``), or ``<key>_ids``.

    Args:
        tokenizer: a ``TOKENIZERS`` config (shared through :func:`build_tokenizer`) or a tokenizer.
        max_length: the most ids per text, specials included.
        keys: results keys holding text.

    Raises:
        BadSampleError: a text gives no token at all (the message names the sample).

    Example:
        >>> dict(type='Tokenize', tokenizer=dict(type='SyntheticTokenizer'), max_length=25)
    """

    def __init__(
        self, tokenizer: dict | Any, max_length: int = 25, keys: Sequence[str] = ('caption',)
    ) -> None:
        self.tokenizer = build_tokenizer(tokenizer)
        self.max_length = max_length
        self.keys = tuple(keys)

    def _encode(self, text: str, results: dict[str, Any], key: str) -> np.ndarray:
        ids = self.tokenizer.encode(text, self.max_length)
        if len(ids) <= 1 + int(getattr(self.tokenizer, 'add_sep', False)):
            raise BadSampleError(
                f'Tokenize: {describe_sample(results)} has a {key!r} with no token: {text!r}'
            )
        return np.asarray(ids, dtype=np.int64)

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        for key in self.keys:
            value = _check_text(results, key)
            if isinstance(value, str):
                out_key = 'input_ids' if key == 'caption' else f'{key}_ids'
                results[out_key] = self._encode(value, results, key)
            else:
                results[f'{key}_ids'] = [self._encode(t, results, key) for t in value]
        return results

    def __repr__(self) -> str:
        return (
            f'{type(self).__name__}(tokenizer={self.tokenizer!r}, '
            f'max_length={self.max_length}, keys={self.keys})'
        )


@TRANSFORMS.register_module()
class MaskText:
    """BERT / ALBEF masked-language-model corruption of ``input_ids``.

    Each real token (not ``[CLS]``, ``[SEP]``, ``[PAD]``, ``[MASK]``) is chosen with probability
    ``mlm_probability``; a chosen token becomes ``[MASK]`` with probability 0.8, a random
    non-special token with 0.1, and stays unchanged with 0.1. Draws come from numpy's global RNG,
    so a seeded run masks reproducibly. Unlike ALBEF, the random replacement never draws a special
    token.

    Required keys: ``input_ids``. Added keys: ``mlm_input_ids`` (int64 ``[L]``), ``mlm_labels``
    (int64 ``[L]``: the original id where chosen, -100 elsewhere).

    Args:
        tokenizer: a ``TOKENIZERS`` config or a tokenizer (its special ids and vocabulary size).
        mlm_probability: chance that a real token is chosen.
        mask_ratio: share of chosen tokens replaced by ``[MASK]``.
        random_ratio: share of chosen tokens replaced by a random token (the rest stay unchanged).

    Example:
        >>> dict(type='MaskText', tokenizer=dict(type='SyntheticTokenizer'), mlm_probability=0.15)
    """

    def __init__(
        self,
        tokenizer: dict | Any,
        mlm_probability: float = 0.15,
        mask_ratio: float = 0.8,
        random_ratio: float = 0.1,
    ) -> None:
        if not (0 <= mask_ratio and 0 <= random_ratio and mask_ratio + random_ratio <= 1):
            raise ValueError(f'MaskText: bad ratios mask={mask_ratio}, random={random_ratio}')
        self.tokenizer = build_tokenizer(tokenizer)
        self.mlm_probability = mlm_probability
        self.mask_ratio, self.random_ratio = mask_ratio, random_ratio
        self._never: np.ndarray | None = None
        self._replacements: np.ndarray | None = None

    def _tables(self) -> tuple[np.ndarray, np.ndarray]:
        if self._never is None or self._replacements is None:
            tok = self.tokenizer
            never = {tok.cls_token_id, tok.sep_token_id, tok.pad_token_id, tok.mask_token_id}
            self._never = np.array(sorted(never), dtype=np.int64)
            special = np.array(sorted(set(tok.all_special_ids) | never), dtype=np.int64)
            self._replacements = np.setdiff1d(np.arange(tok.vocab_size, dtype=np.int64), special)
        return self._never, self._replacements

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        never, replacements = self._tables()
        ids = np.asarray(results['input_ids'], dtype=np.int64)
        n = len(ids)
        chosen = (np.random.random(n) < self.mlm_probability) & ~np.isin(ids, never)
        kind = np.random.random(n)
        random_tokens = replacements[np.random.randint(0, len(replacements), size=n)]
        to_mask = chosen & (kind < self.mask_ratio)
        to_random = (
            chosen & (kind >= self.mask_ratio) & (kind < self.mask_ratio + self.random_ratio)
        )
        mlm_ids = ids.copy()
        mlm_ids[to_mask] = self.tokenizer.mask_token_id
        mlm_ids[to_random] = random_tokens[to_random]
        results['mlm_input_ids'] = mlm_ids
        results['mlm_labels'] = np.where(chosen, ids, -100).astype(np.int64)
        return results

    def __repr__(self) -> str:
        return (
            f'{type(self).__name__}(tokenizer={self.tokenizer!r}, '
            f'mlm_probability={self.mlm_probability})'
        )
