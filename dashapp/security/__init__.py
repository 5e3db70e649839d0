"""Authentication, roles and the audit trail."""
from dashapp.security.roles import ROLES, role_allows  # noqa: F401
