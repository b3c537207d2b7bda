"""The ground floor every package stands on (it imports no other ``mimo`` package).

* ``errors``: ``MimoDataError``, the user-error type every command prints as one line with
  exit code 2, and ``ImageError`` (a ``MimoDataError``) for images.
* ``images``: the one way to turn a file or an array into pixels (``read_image``,
  ``read_raster``, ``image_header``, ``load_volume``, ``load_nifti``, ``to_uint8`` ...), with
  ``limits`` (``ImageLimits``), ``intensity`` (windows, NaN-aware ranges) and ``volumes``
  (RAS+ orientation, display slices, ``Volume``) and ``dicom`` (DICOM headers) beside it.
* ``markup``: the special tokens ``<image> <region> <p> </p> <SEG>``; ``answers``: parsing a
  ``<p>term</p> <SEG>`` answer; ``results``: the one result type, ``Prediction`` and ``Segment``.
* ``defaults``: settings several packages share (``MASK_THRESHOLD``, ``MAX_NEW_TOKENS``).
* ``files``: the one atomic writer (files and folders) and ``safe_name`` (an id as a file name).
"""
