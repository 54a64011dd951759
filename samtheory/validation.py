"""Boundary checks and safe output, public: the helpers samtheory's own functions use, for the repository's
experiments and for users' scripts that want the same contract (a ``ValueError`` naming the argument and its
value; output paths checked before any work; files written atomically)."""

from ._paths import check_output_file, check_output_folder, write_atomically
from ._validation import (
    as_bool, as_float_array, as_matrix, as_positive_int, as_seed_array, broadcast, choice,
)

__all__ = ["as_bool", "as_float_array", "as_matrix", "as_positive_int", "as_seed_array", "broadcast", "choice",
           "check_output_file", "check_output_folder", "write_atomically"]
