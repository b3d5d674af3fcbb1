"""Domain errors: a message a person can act on, optionally per field."""


class DomainError(Exception):
    """A rule refused the request; `message` says why in words."""

    def __init__(self, message: str, *, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


class NotFound(DomainError):
    """The thing asked for does not exist."""


class Conflict(DomainError):
    """The request clashes with what is stored (a duplicate, a state already changed)."""


class InvalidInput(DomainError):
    """Input that breaks a rule; `fields` names each field at fault."""
