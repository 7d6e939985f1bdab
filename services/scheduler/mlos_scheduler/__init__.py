"""MLOS scheduler: the Open Inference Protocol front door, batching and routing."""
