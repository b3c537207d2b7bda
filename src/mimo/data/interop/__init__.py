"""Interoperation with the field's published data: readers of MeCoVQA (-G, -G+),
SA-Med2D-20M, LLaVA-Med, VQA-RAD, SLAKE and PathVQA in their published forms, and a
writer back to the MeCoVQA form.

Their source kinds are ``record`` kinds in the registry (``mimo.data.readers.READERS``):
their samples already are question/answer records, which the builder passes through
(``mimo.data.interop.build``). SA-Med2D-20M has no text: it is a ``case`` kind read as cases
(``mimo.data.interop.samed2d``) and goes through the perspective generator like any other.
"""
