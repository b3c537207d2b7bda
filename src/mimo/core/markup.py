"""The special tokens of MIMO's conversations: the one home of the markup vocabulary.

``<image>`` marks where the image goes in the first human turn, ``<region>`` a visual prompt
(the n-th one of a question is its n-th region), ``<p>term</p>`` a named structure in an
answer and ``<SEG>`` the mask that grounds it (the n-th ``<SEG>`` of an answer is its n-th
mask). ``mimo.core.schema`` checks these counts in records; ``mimo.core.answers`` parses them
out of answers.
"""

IMAGE_TOKEN = "<image>"
REGION_TOKEN = "<region>"
SEG_TOKEN = "<SEG>"
PHRASE_START = "<p>"
PHRASE_END = "</p>"
SPECIAL_TOKENS = (IMAGE_TOKEN, REGION_TOKEN, PHRASE_START, PHRASE_END, SEG_TOKEN)
