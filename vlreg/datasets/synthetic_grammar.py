"""The closed grammar of the synthetic shapes data: its words, templates and vocabulary.

A module of constants with no imports from vlreg, so that the tokenizer
(:class:`~vlreg.datasets.SyntheticTokenizer`) reads the vocabulary without importing the dataset
(:mod:`vlreg.datasets.synthetic`), which imports the transforms, which import the tokenizers.
"""

from __future__ import annotations

__all__ = [
    'COLORS',
    'OPPOSITE',
    'RELATIONS',
    'SHAPES',
    'SIZES',
    'TEMPLATES',
    'synthetic_vocabulary',
]

COLORS: dict[str, tuple[int, int, int]] = {
    'red': (215, 35, 35),
    'green': (40, 165, 60),
    'blue': (40, 90, 225),
    'yellow': (240, 215, 40),
    'purple': (145, 55, 195),
    'orange': (245, 135, 25),
    'white': (250, 250, 250),
}
SHAPES = ('circle', 'square', 'triangle', 'diamond', 'star', 'cross')
# box side as a fraction of the image side
SIZES: dict[str, tuple[float, float]] = {'small': (0.15, 0.21), 'large': (0.30, 0.38)}
RELATIONS = {
    'left': 'to the left of',
    'right': 'to the right of',
    'above': 'above',
    'below': 'below',
}
OPPOSITE = {'left': 'right', 'right': 'left', 'above': 'below', 'below': 'above'}

# {A} {B} {C}: "size colour shape" of the objects in the roles A, B, C; {a} {b} {c}: "colour shape";
# {rel}: where A is relative to B; {rel_ba}: where B is relative to A.
TEMPLATES: dict[int, tuple[str, ...]] = {
    1: (
        'a {A}',
        'there is a {A}',
        'a picture of a {A}',
        'one {a}',
        'a single {A} in the image',
        'the image shows a {a}',
    ),
    2: (
        'a {A} {rel} a {B}',
        'a {B} {rel_ba} a {A}',
        'a {A} and a {B}',
        'there is a {a} {rel} a {b}',
        'two shapes a {A} and a {B}',
        'the {A} is {rel} the {B}',
        'a {b} and a {a}',
    ),
    3: (
        'a {A} {rel} a {B} and a {C}',
        'a {A} a {B} and a {C}',
        'three shapes a {a} a {b} and a {c}',
        'a {C} and a {B} {rel_ba} a {A}',
        'there is a {A} {rel} a {B} and also a {C}',
        'a {b} {rel_ba} a {a} and a {c}',
    ),
}


def synthetic_vocabulary() -> list[str]:
    """Every word the grammar can produce, sorted."""
    words = set(COLORS) | set(SHAPES) | set(SIZES)
    for phrase in RELATIONS.values():
        words.update(phrase.split())
    for templates in TEMPLATES.values():
        for template in templates:
            words.update(w for w in template.split() if not w.startswith('{'))
    return sorted(words)
