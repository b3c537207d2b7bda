"""Template banks render with their fields and have enough phrasings."""

import numpy as np

from mimo.core.schema import REGION_TOKEN
from mimo.data.templates import BANKS, render

FIELDS = dict(
    t="liver",
    t1="liver",
    t2="spleen",
    P="<p>liver</p> <SEG>",
    P1="<p>a</p> <SEG>",
    P2="<p>b</p> <SEG>",
    mod="CT image",
    modname="CT",
    function="stores bile",
    location="in the abdomen",
    appearance="dense",
    system="digestive system",
    category="organ",
    side="left",
    Side="Left",
    side1="left",
    side2="right",
    rel="anterior to",
    area="100",
    cm2="1.0",
    n=2,
    N="2",
    are_n="are",
    regions_word="regions",
    names="the a, the b and the c",
    be="is",
    v="12.3",
)


def test_every_template_renders_and_banks_are_large():
    rng = np.random.default_rng(0)
    for name, options in BANKS.items():
        assert len(options) >= 10, name
        for template in options:
            text = template.format(**FIELDS)
            assert "{" not in text
            if name.endswith(".a"):
                assert REGION_TOKEN not in text, (name, template)
        assert render(name, rng, **FIELDS)


def test_region_questions_reference_regions():
    for name, options in BANKS.items():
        if name.startswith(("II.", "IV.")) and name.endswith(".q"):
            assert all(REGION_TOKEN in t for t in options), name
