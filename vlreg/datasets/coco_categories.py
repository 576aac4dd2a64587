"""Caption words -> the 80 COCO object categories, for the COCO pointing game.

The pointing game asks, for every caption word that names an object category present in the image,
whether the peak of that word's Grad-CAM lies inside a box of that category. This module holds the
(documented, editable) vocabulary that decides which words name which category, and the transform
that links a caption's words to the image's boxes.

The vocabulary (:data:`CATEGORY_TERMS`) lists, for each COCO category, the singular terms that name
it: the category name itself, common synonyms and hyponyms of captions ("man", "woman", "people"
-> person; "bike" -> bicycle; "puppy" -> dog; "sofa" -> couch; "fridge" -> refrigerator ...). Multi-
word terms ("teddy bear", "hot dog", "fire hydrant") are matched as phrases, longest first, so "hot
dog" never counts as a dog and "teddy bear" never as a bear. The surface forms looked up are, for
every term, its singular, its plural (irregular plurals from :data:`IRREGULAR_PLURALS`, otherwise
the English rules: ``-s``; ``-es`` after s, x, z, ch, sh; consonant + y -> ``-ies``; a final
``-man`` -> ``-men``) and the possessive as ALBEF's caption cleaning leaves it ("man's" -> "mans").

Deliberately left out, because captions use them mostly in another sense or for several
categories: "orange" (the colour; "oranges" is kept), "glass" / "glasses" (a cup, a wine glass or
eyeglasses), "baseball" / "football" / "tennis" (the games), "pitcher" (a jug or a player), "bag"
(handbag, backpack or suitcase), "screen", "computer", "cook" / "cycle" (verbs), "couple" /
"family" / "group" ("a couple of dogs"). Kept although ambiguous, because the object sense
dominates COCO captions: "skis" (also a verb), "plant" (COCO's "potted plant" covers house
plants), "monitor" (COCO labels computer monitors "tv"), "controller" (game controllers are
labelled "remote").

Words are compared lower-case, with surrounding punctuation and a possessive "'s" removed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from vlreg.registry import TRANSFORMS

from .transforms.loading import describe_sample

__all__ = [
    'CATEGORY_TERMS',
    'COCO_CATEGORIES',
    'IRREGULAR_PLURALS',
    'LinkCategoryWords',
    'WORD_TO_CATEGORY',
    'build_word_map',
    'find_category_mentions',
    'normalise_word',
    'pluralise',
]

#: The 80 COCO detection categories, in the order of their ids (1 .. 90 with gaps).
COCO_CATEGORIES = (
    'person',
    'bicycle',
    'car',
    'motorcycle',
    'airplane',
    'bus',
    'train',
    'truck',
    'boat',
    'traffic light',
    'fire hydrant',
    'stop sign',
    'parking meter',
    'bench',
    'bird',
    'cat',
    'dog',
    'horse',
    'sheep',
    'cow',
    'elephant',
    'bear',
    'zebra',
    'giraffe',
    'backpack',
    'umbrella',
    'handbag',
    'tie',
    'suitcase',
    'frisbee',
    'skis',
    'snowboard',
    'sports ball',
    'kite',
    'baseball bat',
    'baseball glove',
    'skateboard',
    'surfboard',
    'tennis racket',
    'bottle',
    'wine glass',
    'cup',
    'fork',
    'knife',
    'spoon',
    'bowl',
    'banana',
    'apple',
    'sandwich',
    'orange',
    'broccoli',
    'carrot',
    'hot dog',
    'pizza',
    'donut',
    'cake',
    'chair',
    'couch',
    'potted plant',
    'bed',
    'dining table',
    'toilet',
    'tv',
    'laptop',
    'mouse',
    'remote',
    'keyboard',
    'cell phone',
    'microwave',
    'oven',
    'toaster',
    'sink',
    'refrigerator',
    'book',
    'clock',
    'vase',
    'scissors',
    'teddy bear',
    'hair drier',
    'toothbrush',
)

#: Singular terms naming each category (see the module docstring for what is left out and why).
CATEGORY_TERMS: dict[str, tuple[str, ...]] = {
    'person': (
        'person',
        'man',
        'woman',
        'boy',
        'girl',
        'child',
        'kid',
        'baby',
        'toddler',
        'teenager',
        'teen',
        'adult',
        'guy',
        'lady',
        'gentleman',
        'player',
        'skier',
        'snowboarder',
        'surfer',
        'skateboarder',
        'rider',
        'biker',
        'cyclist',
        'batter',
        'catcher',
        'umpire',
        'chef',
        'policeman',
        'officer',
        'worker',
        'soldier',
        'spectator',
        'pedestrian',
        'crowd',
        'mother',
        'father',
        'daughter',
        'son',
        'friend',
        'human',
        'youngster',
        'athlete',
    ),
    'bicycle': ('bicycle', 'bike'),
    'car': ('car', 'automobile', 'sedan', 'taxi', 'cab', 'suv'),
    'motorcycle': (
        'motorcycle',
        'motorbike',
        'motor bike',
        'motor cycle',
        'dirt bike',
        'moped',
        'scooter',
    ),
    'airplane': ('airplane', 'aeroplane', 'plane', 'airliner', 'jet', 'aircraft', 'jetliner'),
    'bus': ('bus', 'double decker'),
    'train': ('train', 'locomotive', 'tram', 'trolley'),
    'truck': ('truck', 'pickup truck', 'lorry', 'firetruck', 'fire truck'),
    'boat': ('boat', 'ship', 'sailboat', 'canoe', 'kayak', 'yacht', 'ferry', 'raft'),
    'traffic light': ('traffic light', 'stoplight', 'stop light', 'traffic signal'),
    'fire hydrant': ('fire hydrant', 'hydrant'),
    'stop sign': ('stop sign',),
    'parking meter': ('parking meter', 'meter'),
    'bench': ('bench',),
    'bird': (
        'bird',
        'seagull',
        'gull',
        'pigeon',
        'duck',
        'goose',
        'parrot',
        'owl',
        'swan',
        'eagle',
        'hawk',
        'sparrow',
        'crow',
    ),
    'cat': ('cat', 'kitten', 'kitty'),
    'dog': ('dog', 'puppy', 'pup', 'doggy'),
    'horse': ('horse', 'pony', 'foal'),
    'sheep': ('sheep', 'lamb', 'ram'),
    'cow': ('cow', 'cattle', 'calf', 'bull', 'ox'),
    'elephant': ('elephant',),
    'bear': ('bear', 'grizzly', 'polar bear'),
    'zebra': ('zebra',),
    'giraffe': ('giraffe',),
    'backpack': ('backpack', 'back pack', 'rucksack'),
    'umbrella': ('umbrella', 'parasol'),
    'handbag': ('handbag', 'purse', 'hand bag'),
    'tie': ('tie', 'necktie'),
    'suitcase': ('suitcase', 'luggage', 'baggage'),
    'frisbee': ('frisbee', 'frisbe'),
    'skis': ('ski', 'skis'),
    'snowboard': ('snowboard', 'snow board'),
    'sports ball': ('ball', 'soccer ball', 'tennis ball', 'sports ball'),
    'kite': ('kite',),
    'baseball bat': ('baseball bat', 'bat'),
    'baseball glove': ('baseball glove', 'glove', 'mitt'),
    'skateboard': ('skateboard', 'skate board'),
    'surfboard': ('surfboard', 'surf board'),
    'tennis racket': ('tennis racket', 'racket', 'racquet', 'tennis racquet'),
    'bottle': ('bottle',),
    'wine glass': ('wine glass', 'wineglass'),
    'cup': ('cup', 'mug', 'coffee cup'),
    'fork': ('fork',),
    'knife': ('knife',),
    'spoon': ('spoon',),
    'bowl': ('bowl',),
    'banana': ('banana',),
    'apple': ('apple',),
    'sandwich': ('sandwich', 'burger', 'hamburger'),
    'orange': ('oranges', 'tangerine', 'clementine'),
    'broccoli': ('broccoli',),
    'carrot': ('carrot',),
    'hot dog': ('hot dog', 'hotdog'),
    'pizza': ('pizza',),
    'donut': ('donut', 'doughnut'),
    'cake': ('cake', 'cupcake'),
    'chair': ('chair', 'armchair'),
    'couch': ('couch', 'sofa'),
    'potted plant': ('potted plant', 'plant', 'houseplant'),
    'bed': ('bed',),
    'dining table': ('dining table', 'table'),
    'toilet': ('toilet',),
    'tv': ('tv', 'television', 'monitor'),
    'laptop': ('laptop',),
    'mouse': ('mouse',),
    'remote': ('remote', 'remote control', 'controller'),
    'keyboard': ('keyboard',),
    'cell phone': ('cell phone', 'cellphone', 'phone', 'smartphone', 'mobile phone'),
    'microwave': ('microwave',),
    'oven': ('oven', 'stove'),
    'toaster': ('toaster',),
    'sink': ('sink',),
    'refrigerator': ('refrigerator', 'fridge'),
    'book': ('book',),
    'clock': ('clock',),
    'vase': ('vase',),
    'scissors': ('scissors',),
    'teddy bear': ('teddy bear', 'teddy', 'stuffed animal'),
    'hair drier': ('hair drier', 'hair dryer', 'blow dryer'),
    'toothbrush': ('toothbrush', 'tooth brush'),
}

#: Plurals that the English rules of :func:`pluralise` get wrong (last word of a term). A value of
#: None: the word has no separate plural form (it is its own plural, or already plural).
IRREGULAR_PLURALS: dict[str, str | None] = {
    'person': 'people',
    'child': 'children',
    'mouse': 'mice',
    'goose': 'geese',
    'knife': 'knives',
    'calf': 'calves',
    'ox': 'oxen',
    'sheep': None,
    'cattle': None,
    'scissors': None,
    'skis': None,
    'oranges': None,
    'broccoli': None,
    'luggage': None,
    'baggage': None,
    'human': 'humans',
}

_VOWELS = set('aeiou')
_PUNCT = re.compile(r'^[^\w]+|[^\w]+$')


def pluralise(term: str) -> str | None:
    """English plural of a term (its last word changes), or None when it has no separate plural.

    Example:
        >>> pluralise('bus'), pluralise('puppy'), pluralise('policeman'), pluralise('teddy bear')
        ('buses', 'puppies', 'policemen', 'teddy bears')
    """
    *head, last = term.split(' ')
    if last in IRREGULAR_PLURALS:
        plural = IRREGULAR_PLURALS[last]
    elif last.endswith('man'):
        plural = last[:-3] + 'men'
    elif last.endswith(('s', 'x', 'z', 'ch', 'sh')):
        plural = last + 'es'
    elif last.endswith('y') and len(last) > 1 and last[-2] not in _VOWELS:
        plural = last[:-1] + 'ies'
    else:
        plural = last + 's'
    return None if plural is None else ' '.join([*head, plural])


def build_word_map(terms: Mapping[str, Iterable[str]] = CATEGORY_TERMS) -> dict[str, str]:
    """Every surface form (singular, plural, cleaned possessive) -> its category.

    Raises:
        ValueError: a surface form would name two categories (the vocabulary is ambiguous).
    """
    out: dict[str, str] = {}

    def add(form: str, category: str) -> None:
        if out.get(form, category) != category:
            raise ValueError(f'the word {form!r} names both {out[form]!r} and {category!r}')
        out[form] = category

    for category, names in terms.items():
        for term in names:
            term = term.lower().strip()
            plural = pluralise(term)
            for form in (term, plural):
                if form is None:
                    continue
                add(form, category)
                if not form.endswith('s'):  # "man's" -> "mans" after ALBEF's cleaning
                    add(form + 's', category)
    return out


#: surface form -> category, built from :data:`CATEGORY_TERMS` at import
WORD_TO_CATEGORY: dict[str, str] = build_word_map()


def normalise_word(word: str) -> str:
    """Lower-case, strip surrounding punctuation and a possessive ``'s`` / ``s'``."""
    word = _PUNCT.sub('', word.lower().replace('\u2019', "'"))
    if word.endswith("'s"):
        word = word[:-2]
    return word.rstrip("'")


def find_category_mentions(
    words: Sequence[str], word_map: Mapping[str, str] | None = None
) -> list[tuple[str, list[int]]]:
    """The category mentions of a caption, left to right, longest phrase first.

    Args:
        words: the caption's whitespace words.
        word_map: surface form -> category (default: :data:`WORD_TO_CATEGORY`).

    Returns:
        ``[(category, [word indices]), ...]``; the indices of a mention are consecutive.

    Example:
        >>> find_category_mentions('two men eat hot dogs on a bench'.split())
        [('person', [1]), ('hot dog', [3, 4]), ('bench', [7])]
    """
    word_map = WORD_TO_CATEGORY if word_map is None else word_map
    longest = max((len(k.split(' ')) for k in word_map), default=1)
    norm = [normalise_word(w) for w in words]
    out, i = [], 0
    while i < len(norm):
        for n in range(min(longest, len(norm) - i), 0, -1):
            category = word_map.get(' '.join(norm[i : i + n]))
            if category is not None:
                out.append((category, list(range(i, i + n))))
                i += n
                break
        else:
            i += 1
    return out


@TRANSFORMS.register_module()
class LinkCategoryWords:
    """Link the caption's category words to the image's boxes of that category (pointing game).

    For each mention found by :func:`find_category_mentions` whose category has at least one box
    in the image (``categories``, the category name of each ``gt_bboxes`` row, as
    :class:`~vlreg.datasets.GroundingDataset` stores them), adds one *named object*: the mention's
    word indices and the indices of every box of its category (the peak may fall in any of them).
    Mentions of categories without a box in the image are counted (``num_unboxed_mentions``), not
    scored: there is no box to point into (the object is unannotated, or the word is used in
    another sense).

    Run it after the last transform that changes the caption's words (``CleanCaption``,
    ``CaptionAwareHorizontalFlip``), so that word indices match ``AnnotateWords``'s ``word_ids``.

    Required keys: ``caption`` (one string), ``categories`` (list of names, one per box).
    Added keys: ``gt_word_indices`` (list of word-index lists, one per named object),
    ``gt_box_groups`` (list of box-index lists, aligned), ``gt_object_names`` (the categories),
    ``num_unboxed_mentions`` (int).

    Args:
        terms: ``{category: [singular terms]}`` replacing :data:`CATEGORY_TERMS` (plurals and
            possessives are added), or None for the built-in vocabulary.

    Example:
        >>> dict(type='LinkCategoryWords')
    """

    def __init__(self, terms: Mapping[str, Sequence[str]] | None = None) -> None:
        self.word_map = WORD_TO_CATEGORY if terms is None else build_word_map(terms)

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        caption, names = results.get('caption'), results.get('categories')
        if not isinstance(caption, str):
            raise KeyError(
                f'LinkCategoryWords: {describe_sample(results)} needs one caption '
                f'string, got {type(caption).__name__}'
            )
        if names is None:
            raise KeyError(
                f'LinkCategoryWords: {describe_sample(results)} has no "categories" '
                '(the category name of each box)'
            )
        by_name: dict[str, list[int]] = {}
        for index, name in enumerate(names):
            by_name.setdefault(str(name).lower(), []).append(index)
        words, groups, objects, unboxed = [], [], [], 0
        for category, indices in find_category_mentions(caption.split(), self.word_map):
            boxes = by_name.get(category)
            if not boxes:
                unboxed += 1
                continue
            words.append(indices)
            groups.append(list(boxes))
            objects.append(category)
        results.update(
            gt_word_indices=words,
            gt_box_groups=groups,
            gt_object_names=objects,
            num_unboxed_mentions=unboxed,
        )
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}({len(self.word_map)} surface forms)'
