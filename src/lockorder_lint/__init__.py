"""lockorder-lint: find SQLAlchemy code that takes row locks in an order that deadlocks."""

__version__ = "0.1.0"
