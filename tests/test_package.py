"""The top-level names and the one result type."""

import subprocess
import sys

import numpy as np
import pytest
import torch

import mimo
from mimo.core.results import Prediction, Segment


def test_import_mimo_loads_no_model_code():
    code = "import sys, mimo; print(sorted(m for m in ('torch', 'transformers', 'mimo.model') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_top_level_names_are_the_package_classes():
    from mimo import MimoConfig, MimoForConditionalGeneration, MimoProcessor, Predictor
    from mimo.infer import Predictor as infer_predictor
    from mimo.model import MimoConfig as model_config
    from mimo.model import MimoForConditionalGeneration as model_class
    from mimo.model import MimoProcessor as model_processor

    assert (MimoConfig, MimoForConditionalGeneration, MimoProcessor, Predictor) == (
        model_config,
        model_class,
        model_processor,
        infer_predictor,
    )
    assert {"MimoConfig", "Predictor"} <= set(dir(mimo))
    with pytest.raises(AttributeError, match="no attribute 'Predicter'"):
        mimo.Predicter  # noqa: B018


def test_one_segment_and_prediction_type_everywhere():
    import mimo.eval
    import mimo.eval.grounding
    import mimo.infer

    assert mimo.eval.Segment is mimo.eval.grounding.Segment is mimo.infer.Segment is Segment
    assert mimo.eval.Prediction is mimo.infer.Prediction is Prediction
    old = mimo.eval.PredictedSegment(np.ones((2, 2), bool), "liver", 0.5)
    assert (old.phrase, old.score) == ("liver", 0.5)


def test_post_process_answer_pairs_masks_with_seg_phrases():
    from mimo.model import MimoProcessor

    masks = torch.zeros(3, 4, 5, dtype=torch.bool)
    masks[1, 0, 0] = True
    scores = torch.tensor([0.25, 0.5, 0.75])
    answer = "The <p>left kidney</p> <SEG> and <SEG>."
    pred = MimoProcessor.post_process_answer(answer, masks, scores)
    assert pred.answer == answer and pred.text == "The left kidney and."
    assert [s.phrase for s in pred.segments] == ["left kidney", None, None]
    assert [s.score for s in pred.segments] == [0.25, 0.5, 0.75]
    assert pred.segments[1].mask.dtype == bool and pred.segments[1].mask.sum() == 1
    assert Prediction("It is the <p>liver</p>.").text == "It is the liver."
