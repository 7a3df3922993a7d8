"""Training: the pmapped step and loop, optimiser and schedules, checkpoints, run logs,
devices and hosts."""
