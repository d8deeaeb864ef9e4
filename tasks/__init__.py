"""Task plugins shipped with saebench (installed as ``saebench_tasks``).

Each plugin is one module registered under the ``saebench.tasks`` entry-point group.
"""
