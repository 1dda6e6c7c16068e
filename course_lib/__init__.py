"""course_lib: the companion package of the course *Transformers for Vision*.

Every model the book teaches lives here, one concept per module:

* :mod:`course_lib.attention` - scaled dot-product attention, masks;
* :mod:`course_lib.multihead` - multi-head attention (self and cross);
* :mod:`course_lib.positional` - sinusoidal, learned, 2-D, relative and rotary position encodings;
* :mod:`course_lib.block` - the Transformer encoder block (MLP, drop path);
* :mod:`course_lib.layers` - what ViT and Swin share: patch embedding, drop-path schedule, checks;
* :mod:`course_lib.vit` and :mod:`course_lib.swin` - the Vision and Swin Transformers;
* :mod:`course_lib.complexity` - parameter and FLOP counts, analytic and measured;
* :mod:`course_lib.grading` - exercise checks (and the batch grader behind ``course-lib grade``);
* :mod:`course_lib.instructor` - the ``course-lib`` command (release, grade, slides), which needs the
  ``[instructor]`` extra.
"""

__version__ = "0.1.0"
