"""Instructors' tools, kept out of the student's runtime package: they need the ``[instructor]`` extra
(``pip install "course-lib[instructor]"``: nbconvert, nbclient, pyyaml, playwright).

One command, ``course-lib`` (:mod:`course_lib.instructor.cli`), one module per subcommand:

* ``course-lib release`` (:mod:`.release`) - exercises generated from the solution notebooks;
* ``course-lib grade`` (:mod:`.grade`) - the batch grader (:mod:`course_lib.grading`);
* ``course-lib autograder`` (:mod:`.autograder`) - the Gradescope autograder bundle;
* ``course-lib slides`` (:mod:`.slides`) - offline reveal.js lecture decks from the chapters.

Each subcommand module exposes ``add_parser(subparsers)``, which registers its arguments and calls
``set_defaults(func=run)``, and ``run(args) -> int``, the exit status.
"""
