"""A minimal third-party saebench task plugin (see ``object_recall``)."""

from saebench_example_task.object_recall import ObjectRecallTask

__all__ = ["ObjectRecallTask"]
