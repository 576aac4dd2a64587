"""VQA answer normalisation: the form in which answers are compared and indexed.

The VQA v2 evaluation ("Open-Ended" task) normalises a predicted answer before comparing it with
the annotators' answers; the answer-list heads index their candidates by the same form, so that a
candidate and a prediction meet exactly where the metric says they match. Implemented here from the
evaluation's description (:mod:`vlreg.evaluation.vqa` holds the accuracy built on it):

New lines and tabs become spaces, the text is stripped, then

1. *punctuation* (:func:`normalize_punctuation`): each of ``; / [ ] " { } ( ) = + \\ _ - > < @ ` ,
   ? !`` is deleted when it touches a space in the answer, or when the answer holds a comma between
   two digits (``"1,000"`` -> ``"1000"``); otherwise it becomes a space (``"yes/no"`` -> ``"yes
   no"``). A period is deleted unless a digit follows it (``"3.5"`` stays, ``"dog."`` -> ``"dog"``).
   The apostrophe, the colon and ``# $ % & * | ~`` are kept;
2. *digits and articles* (:func:`normalize_words`): lower-case, split on white space, number words
   ``none, zero, one ... ten`` -> ``0 ... 10``, the articles ``a, an, the`` are dropped, and
   contractions written without their apostrophe get it back (``"dont"`` -> ``"don't"``,
   :data:`CONTRACTIONS`); words are joined with single spaces.

This module imports nothing from vlreg, so datasets, models and metrics can all use it.
"""

from __future__ import annotations

import re

__all__ = [
    'CONTRACTIONS',
    'NUMBER_WORDS',
    'normalize_answer',
    'normalize_punctuation',
    'normalize_words',
]

_PUNCTUATION = (
    ';',
    '/',
    '[',
    ']',
    '"',
    '{',
    '}',
    '(',
    ')',
    '=',
    '+',
    '\\',
    '_',
    '-',
    '>',
    '<',
    '@',
    '`',
    ',',
    '?',
    '!',
)
_COMMA_IN_NUMBER = re.compile(r'\d,\d')
_PERIOD_NOT_BEFORE_DIGIT = re.compile(r'\.(?!\d)')
_ARTICLES = frozenset(('a', 'an', 'the'))

NUMBER_WORDS: dict[str, str] = {
    'none': '0',
    'zero': '0',
    'one': '1',
    'two': '2',
    'three': '3',
    'four': '4',
    'five': '5',
    'six': '6',
    'seven': '7',
    'eight': '8',
    'nine': '9',
    'ten': '10',
}

# The evaluation's contraction table: a word typed without its apostrophe(s) -> the contraction.
# Its four capitalised keys ("Im", "Ive", "Id've", "I'dve") can never match (words are lower-cased
# first), so they are left out, which changes nothing. Some entries are odd but official
# ("somebody'd" -> "somebodyd", "twas" -> "'twas"); they are kept so that scores match the server.
CONTRACTIONS: dict[str, str] = {
    'aint': "ain't",
    'arent': "aren't",
    'cant': "can't",
    'couldve': "could've",
    'couldnt': "couldn't",
    "couldn'tve": "couldn't've",
    "couldnt've": "couldn't've",
    'didnt': "didn't",
    'doesnt': "doesn't",
    'dont': "don't",
    'hadnt': "hadn't",
    "hadnt've": "hadn't've",
    "hadn'tve": "hadn't've",
    'hasnt': "hasn't",
    'havent': "haven't",
    'hed': "he'd",
    "hed've": "he'd've",
    "he'dve": "he'd've",
    'hes': "he's",
    'howd': "how'd",
    'howll': "how'll",
    'hows': "how's",
    'isnt': "isn't",
    'itd': "it'd",
    "itd've": "it'd've",
    "it'dve": "it'd've",
    'itll': "it'll",
    "let's": "let's",
    'maam': "ma'am",
    'mightnt': "mightn't",
    "mightnt've": "mightn't've",
    "mightn'tve": "mightn't've",
    'mightve': "might've",
    'mustnt': "mustn't",
    'mustve': "must've",
    'neednt': "needn't",
    'notve': "not've",
    'oclock': "o'clock",
    'oughtnt': "oughtn't",
    "ow's'at": "'ow's'at",
    "'ows'at": "'ow's'at",
    "'ow'sat": "'ow's'at",
    'shant': "shan't",
    "shed've": "she'd've",
    "she'dve": "she'd've",
    "she's": "she's",
    'shouldve': "should've",
    'shouldnt': "shouldn't",
    "shouldnt've": "shouldn't've",
    "shouldn'tve": "shouldn't've",
    "somebody'd": 'somebodyd',
    "somebodyd've": "somebody'd've",
    "somebody'dve": "somebody'd've",
    'somebodyll': "somebody'll",
    'somebodys': "somebody's",
    'someoned': "someone'd",
    "someoned've": "someone'd've",
    "someone'dve": "someone'd've",
    'someonell': "someone'll",
    'someones': "someone's",
    'somethingd': "something'd",
    "somethingd've": "something'd've",
    "something'dve": "something'd've",
    'somethingll': "something'll",
    'thats': "that's",
    'thered': "there'd",
    "thered've": "there'd've",
    "there'dve": "there'd've",
    'therere': "there're",
    'theres': "there's",
    'theyd': "they'd",
    "theyd've": "they'd've",
    "they'dve": "they'd've",
    'theyll': "they'll",
    'theyre': "they're",
    'theyve': "they've",
    'twas': "'twas",
    'wasnt': "wasn't",
    "wed've": "we'd've",
    "we'dve": "we'd've",
    'weve': "we've",
    'werent': "weren't",
    'whatll': "what'll",
    'whatre': "what're",
    'whats': "what's",
    'whatve': "what've",
    'whens': "when's",
    'whered': "where'd",
    'wheres': "where's",
    'whereve': "where've",
    'whod': "who'd",
    "whod've": "who'd've",
    "who'dve": "who'd've",
    'wholl': "who'll",
    'whos': "who's",
    'whove': "who've",
    'whyll': "why'll",
    'whyre': "why're",
    'whys': "why's",
    'wont': "won't",
    'wouldve': "would've",
    'wouldnt': "wouldn't",
    "wouldnt've": "wouldn't've",
    "wouldn'tve": "wouldn't've",
    'yall': "y'all",
    "yall'll": "y'all'll",
    "y'allll": "y'all'll",
    "yall'd've": "y'all'd've",
    "y'alld've": "y'all'd've",
    "y'all'dve": "y'all'd've",
    'youd': "you'd",
    "youd've": "you'd've",
    "you'dve": "you'd've",
    'youll': "you'll",
    'youre': "you're",
    'youve': "you've",
}


def normalize_punctuation(text: str) -> str:
    """Step 1 of the normalisation: punctuation (see the module docstring)."""
    # the decision for each mark looks at the input text, not at the partly cleaned one
    delete_all = _COMMA_IN_NUMBER.search(text) is not None
    out = text
    for mark in _PUNCTUATION:
        if delete_all or f'{mark} ' in text or f' {mark}' in text:
            out = out.replace(mark, '')
        else:
            out = out.replace(mark, ' ')
    return _PERIOD_NOT_BEFORE_DIGIT.sub('', out)


def normalize_words(text: str) -> str:
    """Step 2 of the normalisation: lower-case, number words, articles, contractions."""
    words = [NUMBER_WORDS.get(w, w) for w in text.lower().split()]
    return ' '.join(CONTRACTIONS.get(w, w) for w in words if w not in _ARTICLES)


def normalize_answer(text: str) -> str:
    """The full normalisation the evaluation applies to a predicted answer.

    Example:
        >>> normalize_answer('Two dogs.'), normalize_answer('1,000'), normalize_answer('3.5')
        ('2 dogs', '1000', '3.5')
    """
    text = text.replace('\n', ' ').replace('\t', ' ').strip()
    return normalize_words(normalize_punctuation(text))
