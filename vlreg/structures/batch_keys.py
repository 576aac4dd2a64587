"""The names of a sample's and a batch's keys, and how each text key is padded.

One place for the rules that the pipeline (``PackInputs``), the data preprocessor, the
pretrainers and the losses share (docs/architecture.md, "One sample, out of the pipeline" and
"One batch"). This module imports nothing from vlreg, so every layer can use it.

Keys along the way:

* **Pipeline** (the transforms' ``results`` dict): the image is ``img``; an extra image view is
  ``img_<name>`` (``ImageView(out_key='img_aug')``), its boxes ``gt_bboxes_<name>``. ``img_path`` and
  ``img_shape`` are not images.
* **Sample / batch inputs**: ``img`` is packed as ``image`` and ``img_<name>`` as ``image_<name>``
  (every key starting with ``image`` is an image); every other tensor key is text: ``input_ids``
  (+ ``attention_mask``, made by the preprocessor), ``mlm_input_ids`` / ``mlm_labels``
  (``MaskText``), ``word_ids`` / ``content_mask`` (``AnnotateWords``) and, in retrieval samples,
  the per-caption keys ``caption_*`` (``caption_ids`` -> ``caption_attention_mask`` and
  ``caption_image_index``).
* **Views** (what the losses pair, :data:`IMAGE_VIEWS` x :data:`TEXT_VIEWS`): an image view is
  named by its batch key (``image``, ``image_aug``); the text views are ``text`` (``input_ids``)
  and ``text_masked`` (``mlm_input_ids``). The features of a view carry its suffix
  (:func:`view_key`: ``image_embed`` of ``image_aug`` is ``image_embed_aug``).

Padding (:func:`text_pad_value`): the tokenizer's pad id for token ids, :data:`IGNORE_LABEL`
(-100) for ``*labels``, :data:`NO_WORD` (-1) for ``*word_ids``, :data:`MASK_PAD` (0) for
``*mask``.
"""

from __future__ import annotations

__all__ = [
    'ATTENTION_MASK',
    'CAPTION_ATTENTION_MASK',
    'CAPTION_IDS',
    'CAPTION_IMAGE_INDEX',
    'CAPTION_PREFIX',
    'CONTENT_MASK',
    'DEFAULT_DATA_KEYS',
    'DEFAULT_META_KEYS',
    'DEFAULT_PAD_VALUES',
    'DEFAULT_TEXT_KEYS',
    'IGNORE_LABEL',
    'IMAGE',
    'IMAGE_VIEWS',
    'INPUT_IDS',
    'MASK_PAD',
    'MLM_INPUT_IDS',
    'MLM_LABELS',
    'NOT_IMAGE_KEYS',
    'NO_WORD',
    'PIPELINE_IMAGE',
    'TEXT_VIEWS',
    'TEXT_VIEW_KEYS',
    'WORD_IDS',
    'batch_image_key',
    'boxes_key',
    'is_batch_image_key',
    'is_caption_key',
    'is_pipeline_image_key',
    'missing_view_message',
    'pipeline_image_key',
    'text_pad_value',
    'view_batch_key',
    'view_key',
    'view_suffix',
]

# --- key names -------------------------------------------------------------------------------
PIPELINE_IMAGE = 'img'  #: the image in a pipeline's results dict
NOT_IMAGE_KEYS = ('img_path', 'img_shape')  #: ``img_*`` keys of the pipeline that are no images
IMAGE = 'image'  #: the image in a sample's / batch's inputs
INPUT_IDS = 'input_ids'
ATTENTION_MASK = 'attention_mask'
MLM_INPUT_IDS = 'mlm_input_ids'
MLM_LABELS = 'mlm_labels'
WORD_IDS = 'word_ids'
CONTENT_MASK = 'content_mask'
CAPTION_PREFIX = 'caption_'  #: per-caption keys of retrieval samples start with this
CAPTION_IDS = 'caption_ids'
CAPTION_ATTENTION_MASK = 'caption_attention_mask'
CAPTION_IMAGE_INDEX = 'caption_image_index'

#: text keys ``PackInputs`` packs by default
DEFAULT_TEXT_KEYS = (
    INPUT_IDS,
    MLM_INPUT_IDS,
    MLM_LABELS,
    WORD_IDS,
    CONTENT_MASK,
    CAPTION_IDS,
    'caption_word_ids',
    'caption_content_mask',
)
#: results keys ``PackInputs`` stores as tensor data fields of the data sample
DEFAULT_DATA_KEYS = ('gt_bboxes', 'gt_bboxes_aug')
#: results keys ``PackInputs`` copies into the data sample's metainfo
DEFAULT_META_KEYS = (
    'sample_idx',
    'image_id',
    'ori_image_id',
    'img_path',
    'caption',
    'text_index',
    'ann_index',
    'ori_shape',
    'img_shape',
    'flipped',
    'objects',
    'gt_word_indices',
)

# --- padding ---------------------------------------------------------------------------------
IGNORE_LABEL = -100  #: ``mlm_labels`` outside the masked positions, and their padding
NO_WORD = -1  #: ``word_ids`` of a token that belongs to no word, and their padding
MASK_PAD = 0  #: padding of every ``*mask`` key

#: padding value of each known text key; ``None`` stands for the tokenizer's pad id
DEFAULT_PAD_VALUES: dict[str, int | None] = {
    INPUT_IDS: None,
    MLM_INPUT_IDS: None,
    CAPTION_IDS: None,
    MLM_LABELS: IGNORE_LABEL,
    WORD_IDS: NO_WORD,
    'caption_word_ids': NO_WORD,
    CONTENT_MASK: MASK_PAD,
    'caption_content_mask': MASK_PAD,
    ATTENTION_MASK: MASK_PAD,
}


def text_pad_value(key: str, pad_token_id: int, overrides: dict[str, int] | None = None) -> int:
    """Padding value of text key ``key``.

    ``overrides[key]`` if given; else -1 for keys ending in ``word_ids``, -100 for keys ending in
    ``labels``, 0 for keys ending in ``mask``, and ``pad_token_id`` for anything else (token ids).

    Example:
        >>> text_pad_value('caption_word_ids', 0), text_pad_value('mlm_input_ids', 7)
        (-1, 7)
    """
    if overrides and key in overrides:
        return int(overrides[key])
    if key.endswith('word_ids'):
        return NO_WORD
    if key.endswith('labels'):
        return IGNORE_LABEL
    if key.endswith('mask'):
        return MASK_PAD
    return pad_token_id


# --- images: pipeline key <-> batch key --------------------------------------------------------
def is_pipeline_image_key(key: str) -> bool:
    """Whether a results key names an image: ``img`` or ``img_<name>`` (not ``img_path`` /
    ``img_shape``). The value still has to be an ``[H, W, C]`` array."""
    return key == PIPELINE_IMAGE or (
        key.startswith(PIPELINE_IMAGE + '_') and key not in NOT_IMAGE_KEYS
    )


def batch_image_key(key: str) -> str:
    """Where ``PackInputs`` puts a pipeline image: ``img`` -> ``image``, ``img_aug`` ->
    ``image_aug``."""
    return IMAGE + key[len(PIPELINE_IMAGE) :]


def pipeline_image_key(key: str) -> str:
    """The pipeline key of a batch image / image view: ``image_aug`` -> ``img_aug``."""
    return PIPELINE_IMAGE + key[len(IMAGE) :]


def boxes_key(key: str) -> str:
    """The boxes that go with a pipeline image: ``img`` -> ``gt_bboxes``, ``img_aug`` ->
    ``gt_bboxes_aug``."""
    return 'gt_bboxes' + key[len(PIPELINE_IMAGE) :]


def is_batch_image_key(key: str) -> bool:
    """Whether a batch input is an image (every key starting with ``image``)."""
    return key.startswith(IMAGE)


def is_caption_key(key: str) -> bool:
    """Whether a batch input holds one row per caption of a retrieval sample (``caption_*``)."""
    return key.startswith(CAPTION_PREFIX)


# --- views -------------------------------------------------------------------------------------
IMAGE_VIEWS = (IMAGE, 'image_aug')
TEXT_VIEWS = ('text', 'text_masked')
#: the batch key of each text view's token ids
TEXT_VIEW_KEYS = {'text': INPUT_IDS, 'text_masked': MLM_INPUT_IDS}


def view_suffix(view: str) -> str:
    """What a view adds to feature names: ``'aug'`` for ``image_aug``, ``''`` for ``image``."""
    return view.partition('_')[2]


def view_key(base: str, view: str) -> str:
    """Feature key of a view: ``view_key('image_embed', 'image_aug') == 'image_embed_aug'``."""
    suffix = view_suffix(view)
    return f'{base}_{suffix}' if suffix else base


def view_batch_key(view: str) -> str:
    """The batch input a view is encoded from: an image view's own name, a text view's ids
    (``text_masked`` -> ``mlm_input_ids``)."""
    return TEXT_VIEW_KEYS.get(view, view)


def missing_view_message(view: str) -> str:
    """The error when a loss asks for ``view`` and the batch lacks it: which transform adds it."""
    if view in TEXT_VIEW_KEYS:
        return (
            f'a loss uses the view {view!r} but the batch has no {view_batch_key(view)}: '
            "add dict(type='MaskText', ...) to the train pipeline"
        )
    return (
        f'a loss uses the view {view!r} but the batch has no {view!r}: add '
        f"dict(type='ImageView', out_key='{pipeline_image_key(view)}') to the train pipeline"
    )
