"""What developers and `make` run that is not the product: local services, fakes, sample generators."""
