"""openDRP's PipelineTasks: thin wrappers that read inputs, call the algorithms, write outputs."""

__all__: list[str] = []
