"""Running the filter past one process: inputs cut into ranges that workers read alone, and the
Ray engine (``guard filter --engine ray``, ``filter_dataset``)."""
