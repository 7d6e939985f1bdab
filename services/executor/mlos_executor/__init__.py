"""MLOS executor: owns the hardware, loads model artifacts and runs batches."""
