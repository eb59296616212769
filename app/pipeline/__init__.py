"""The worker's side of a job: compress and benchmark stages, their frame, sandbox, reaper."""
