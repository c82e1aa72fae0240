"""Errors whose message is meant for the user as it is: what failed, and how to fix it."""


class RagError(RuntimeError):
    pass


class BackendError(RagError):
    """A generator backend that cannot be reached or loaded."""

    def __init__(self, backend: str, problem: str, fix: str) -> None:
        self.backend, self.problem, self.fix = backend, problem, fix
        super().__init__(f"LLM backend '{backend}': {problem}. {fix}")
