# ruff: noqa: E501 - the cell is quoted verbatim, long lines included
"""The standard first code cell of every chapter (``book/*.ipynb``) and exercise notebook.

Chapter and exercise authors copy :data:`FIRST_CELL` verbatim into the first code cell;
``tests/test_book_config.py`` checks that every ``book/*.ipynb`` starts with exactly it, and that the
repository it installs from is the one named in ``_config.yml``.
"""

FIRST_CELL = """\
# Setup: installs course_lib on Colab (nothing to do locally), seeds everything, picks the GPU if there is one.
import sys
if "google.colab" in sys.modules:
    import subprocess
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "course-lib @ git+https://github.com/tfv-course/transformers-for-vision@main"], check=True)
from course_lib.runtime import setup
device = setup(seed=0)"""

if __name__ == "__main__":
    print(FIRST_CELL)
