"""The resource kinds' providers. Importing the package registers each kind's field table with the engine."""

from toolhive_apply.providers import fields as _fields  # noqa: F401 - registers the tables
