"""course_lib: the companion package of the course *Transformers for Vision*.

Every model the book teaches lives here, one concept per module:

* :mod:`course_lib.attention` - scaled dot-product attention, masks;
* :mod:`course_lib.multihead` - multi-head attention (self and cross);
* :mod:`course_lib.positional` - sinusoidal, learned, 2-D, relative and rotary position encodings;
* :mod:`course_lib.block` - the Transformer encoder block (MLP, drop path);
* :mod:`course_lib.vit` and :mod:`course_lib.swin` - the Vision and Swin Transformers;
* :mod:`course_lib.complexity` - parameter and FLOP counts, analytic and measured;
* :mod:`course_lib.grading` - exercise checks and the instructors' batch grader.
"""

__version__ = "0.1.0"
