"""tsmeta: dynamics of meta-learning in the teacher-student scenario (arXiv 2408.12545)."""

__version__ = "0.1.0"
