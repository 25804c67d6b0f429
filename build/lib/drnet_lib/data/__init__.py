"""Datasets: real downloaders and loaders, and the offline stand-ins in the same formats."""
