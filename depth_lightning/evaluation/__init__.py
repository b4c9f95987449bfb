"""What is evaluated and how: the protocol (region, depth range, caps), the metrics, the evaluator that
owns every number from the batch to the table, per-image results, bootstrap intervals, the
uncertainty's sparsification, the baselines, tables and figures."""
