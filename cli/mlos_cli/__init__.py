"""The `mlos` command line."""
