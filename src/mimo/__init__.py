"""MIMO-Med: a medical vision-language model with visual-referring input and pixel-grounding output."""

__version__ = "0.1.0"
