"""Inference: the predictor, multi-turn chat, volumes, evaluation and the demo."""

from mimo.infer.predictor import ChatSession, Prediction, Predictor, Segment

__all__ = ["ChatSession", "Prediction", "Predictor", "Segment"]
