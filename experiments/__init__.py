"""From finished runs to the paper's tables and figures (``python -m experiments.report``)."""
