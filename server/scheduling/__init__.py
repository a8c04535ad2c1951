"""Running work: the scheduler, work executors, planner, concurrency slots, rate pacing and paid calls."""
