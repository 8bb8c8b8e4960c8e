"""GPU consumer groups: tier scheduling, model cache, pipelines, progress and outputs."""
