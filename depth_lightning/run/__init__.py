"""Running a job: its folder and log, its record (``metrics.json``), errors and faults, the time budget,
DDP ranks under Hydra, the machine it ran on, speed switches and the loggers' extras."""
